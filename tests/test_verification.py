"""Verification (ortsparse.verification): ORT's nodes are put back where ortsparse is measured
slower. The decisions are checked with a timer whose verdicts the test sets; the real timer is run
for what it measures and reports, never for which side wins."""

import argparse

import numpy as np
import onnx
import onnxruntime
import ortsparse
import pytest
from onnx import helper, numpy_helper
from ortsparse.cli import rewrite_model_main
from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.command import input_shape
from ortsparse.verification import ModelTimer, Timing, verify_rewrite

from tests.api_testing import HIDDEN, assert_close, mlp_input, ort_outputs, save, sparse_mlp
from tests.rewriter_testing import (
    CHAIN_K,
    FORCE_REWRITE,
    depthwise_separable_block,
    matmul_then,
    op_types,
    sparse_conv_chain,
)

pytestmark = pytest.mark.usefixtures("cache_dir")


class ScriptedTimer(ModelTimer):
    """Runs models for real but reports the timings the test decides: a part of the rewrite
    holding one of ``slow_nodes`` takes 2 ms against ORT's 1 ms, one of ``modest_nodes`` 0.8 ms,
    any other 0.5 ms; the whole rewrite ``whole_ms`` against ORT's 10 ms, or 12 ms while it holds
    one of ``losing_nodes``."""

    def __init__(self, slow_nodes=(), whole_ms=5.0, modest_nodes=(), losing_nodes=()):
        super().__init__(threads=1, library=ortsparse.library_path())
        self.slow_nodes = tuple(slow_nodes)
        self.modest_nodes = tuple(modest_nodes)
        self.losing_nodes = tuple(losing_nodes)
        self.whole_ms = whole_ms
        self.compared = []

    def compare(self, original, rewritten, feeds, seconds):
        names = [node.name for node in rewritten.graph.node if node.domain == "ortsparse"]
        self.compared.append(sorted(names))
        holds = lambda prefixes: any(name.startswith(prefixes) for name in names)  # noqa: E731
        if len(original.graph.node) == len(sparse_mlp().graph.node):
            return Timing(10.0, 12.0 if holds(self.losing_nodes) else self.whole_ms)
        if holds(self.slow_nodes):
            return Timing(1.0, 2.0)
        return Timing(1.0, 0.8 if holds(self.modest_nodes) else 0.5)


def rewrite_keeping(model):
    def rewrite(keep, convert):
        return rewrite_model(model, min_sparsity=FORCE_REWRITE, keep=keep, convert=convert)

    return rewrite


def test_a_node_measured_slower_is_put_back():
    model = sparse_mlp()
    timer = ScriptedTimer(slow_nodes=["first"])
    result = verify_rewrite(model, rewrite_keeping(model), timer=timer)
    first, second = result.decisions
    assert not first.rewritten and "not faster on this CPU" in first.reason
    assert first.measured == Timing(1.0, 2.0).describe()
    assert second.rewritten and second.measured == Timing(1.0, 0.5).describe()
    assert op_types(result.model) == ["MatMul", "Relu", "SparseGemm"]
    assert "verified on this CPU" in result.decided_by and "whole model" in result.decided_by
    # Each node alone, then the whole rewrite without the slower one, twice.
    assert len(timer.compared) == 4
    feeds = {"A": mlp_input()}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


def test_a_whole_rewrite_not_faster_keeps_the_original():
    model = sparse_mlp()
    result = verify_rewrite(model, rewrite_keeping(model), timer=ScriptedTimer(whole_ms=10.0))
    assert result.model == model
    assert not any(decision.rewritten for decision in result.decisions)
    assert all("the original is kept" in decision.reason for decision in result.decisions)
    assert "kept the original" in result.decided_by


def test_a_whole_rewrite_faster_only_within_the_noise_keeps_the_original():
    model = sparse_mlp()
    result = verify_rewrite(model, rewrite_keeping(model), timer=ScriptedTimer(whole_ms=9.8))
    assert result.model == model
    assert "kept the original" in result.decided_by


class OnceFasterTimer(ScriptedTimer):
    """ScriptedTimer whose whole rewrite is 5 ms against ORT's 10 the first time it is timed,
    12 ms after that: a win that does not hold."""

    def __init__(self):
        super().__init__()
        self.whole_timings = 0

    def compare(self, original, rewritten, feeds, seconds):
        timing = super().compare(original, rewritten, feeds, seconds)
        if len(original.graph.node) == len(sparse_mlp().graph.node):
            self.whole_timings += 1
            return Timing(10.0, 5.0 if self.whole_timings == 1 else 12.0)
        return timing


def test_a_whole_rewrite_faster_once_but_not_again_keeps_the_original():
    model = sparse_mlp()
    result = verify_rewrite(model, rewrite_keeping(model), timer=OnceFasterTimer())
    assert result.model == model
    assert "kept the original" in result.decided_by


def test_nodes_faster_alone_are_dropped_until_the_whole_model_is_faster():
    # "first" measures 1.25x alone, "second" 2x, but the whole model loses with "first" in it.
    model = sparse_mlp()
    timer = ScriptedTimer(modest_nodes=["first"], losing_nodes=["first"])
    result = verify_rewrite(model, rewrite_keeping(model), timer=timer)
    first, second = result.decisions
    assert not first.rewritten and "short of the 2.00x that the whole model needed" in first.reason
    assert first.measured == Timing(1.0, 0.8).describe()
    assert second.rewritten
    assert op_types(result.model) == ["MatMul", "Relu", "SparseGemm"]
    # Two nodes alone, the whole rewrite, then the whole rewrite without "first", twice.
    assert len(timer.compared) == 5


def test_a_rewrite_computing_other_outputs_keeps_the_original_with_a_warning():
    model = sparse_mlp()

    def wrong_rewrite(keep, convert):
        result = rewrite_model(model, min_sparsity=FORCE_REWRITE, keep=keep, convert=convert)
        sparse = next(node for node in result.model.graph.node if node.domain == "ortsparse")
        values = next(t for t in result.model.graph.initializer if t.name == sparse.input[1])
        values.CopyFrom(numpy_helper.from_array(2 * numpy_helper.to_array(values), values.name))
        return result

    with pytest.warns(RuntimeWarning, match="other outputs than the original.*a bug"):
        result = verify_rewrite(model, wrong_rewrite, timer=ScriptedTimer())
    assert result.model == model and "its outputs differ (output 'Y'" in result.decided_by


def test_real_timing_reports_what_it_measured(tmp_path, capsys):
    path = save(sparse_mlp(), tmp_path / "mlp.onnx")
    out = tmp_path / "out.onnx"
    argv = [path, str(out), "--report", "--min-sparsity", str(FORCE_REWRITE), "--threads", "1"]
    assert rewrite_model_main([*argv, "--input-shape", "A=8,16", "--verify-seconds", "5"]) == 0
    captured = capsys.readouterr()
    assert "verifying on this CPU with inputs A=[8,16], 1 thread(s)" in captured.err
    assert "whole model: measured" in captured.err
    header = captured.out.splitlines()[0].split()
    assert header[-1] == "measured"
    assert "decided by: min-sparsity" in captured.out and "verified on this CPU" in captured.out
    feeds = {"A": mlp_input()}
    assert_close(ort_run(onnx.load(out), feeds), ort_outputs(sparse_mlp(), feeds))


def test_an_input_the_model_lacks_leaves_the_rewrite_unverified():
    model = sparse_mlp()
    result = verify_rewrite(
        model, rewrite_keeping(model), input_shapes={"B": (1, 16)}, timer=ScriptedTimer()
    )
    assert "not verified: no input named B in the model" in result.decided_by
    assert result.rewritten_count == 2


def test_the_drop_in_session_verifies_by_default(tmp_path, capsys):
    path = save(sparse_mlp(), tmp_path / "mlp.onnx")
    options = ortsparse.SessionOptions()
    options.intra_op_num_threads = 1
    session = ortsparse.InferenceSession(
        path, options, providers=["CPUExecutionProvider"], min_sparsity=FORCE_REWRITE
    )
    assert "[ortsparse] verifying on this CPU" in capsys.readouterr().err
    feeds = {"A": mlp_input()}
    assert_close(session.run(None, feeds), ort_outputs(sparse_mlp(), feeds))
    # A verified rewrite is cached apart from an unverified one.
    unverified = ortsparse.InferenceSession(
        path, providers=["CPUExecutionProvider"], min_sparsity=FORCE_REWRITE, verify=False
    )
    assert unverified.ortsparse_model.cache_entry != session.ortsparse_model.cache_entry


@pytest.mark.parametrize("option", ["--threads=0", "--verify-seconds=0", "--verify-seconds=x"])
def test_verification_options_are_checked(tmp_path, capsys, option):
    path = save(sparse_mlp(), tmp_path / "mlp.onnx")
    with pytest.raises(SystemExit) as exited:
        rewrite_model_main([path, str(tmp_path / "out.onnx"), option])
    assert exited.value.code == 2 and option.split("=")[0] in capsys.readouterr().err


@pytest.mark.parametrize("text", ["A", "=1,2", "A=1,x", "A=0,3"])
def test_input_shape_arguments_are_checked(text):
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=D0,D1"):
        input_shape(text)
    assert input_shape("input.1=1,3,224,224") == ("input.1", (1, 3, 224, 224))


def ort_run(model, feeds):
    options = onnxruntime.SessionOptions()
    if any(opset.domain == ortsparse.OP_DOMAIN for opset in model.opset_import):
        options.register_custom_ops_library(ortsparse.library_path())
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, feeds)


class ThreadingTimer(ModelTimer):
    """Runs on 2 threads and reports: a part of the rewrite 0.1 ms against ORT's 0.2 ms, or
    ``single_thread_ms`` where its ortsparse node runs on the calling thread; the whole rewrite 5
    ms against ORT's 10 ms."""

    def __init__(self, single_thread_ms):
        super().__init__(threads=2, library=ortsparse.library_path())
        self.single_thread_ms = single_thread_ms

    def part_ms(self, model):
        nodes = [node for node in model.graph.node if node.domain == "ortsparse"]
        if not nodes:
            return 0.2
        single = any(a.name == "single_thread" and a.i == 1 for n in nodes for a in n.attribute)
        return self.single_thread_ms if single else 0.1

    def compare(self, original, rewritten, feeds, seconds):
        if len(original.graph.node) == len(sparse_mlp().graph.node):
            return Timing(10.0, 5.0)
        return Timing(self.part_ms(original), self.part_ms(rewritten))


def single_thread_attributes(model):
    return [
        next((a.i for a in node.attribute if a.name == "single_thread"), 0)
        for node in model.graph.node
        if node.domain == "ortsparse"
    ]


def test_small_nodes_measured_faster_on_the_calling_thread_run_there():
    model = sparse_mlp()
    result = verify_rewrite(model, rewrite_keeping(model), timer=ThreadingTimer(0.05))
    assert single_thread_attributes(result.model) == [1, 1]
    assert all("on the calling thread" in decision.measured for decision in result.decisions)
    feeds = {"A": mlp_input()}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


def test_small_nodes_not_faster_on_the_calling_thread_stay_on_the_pool():
    model = sparse_mlp()
    result = verify_rewrite(model, rewrite_keeping(model), timer=ThreadingTimer(0.099))
    assert single_thread_attributes(result.model) == [0, 0]
    assert not any("calling thread" in decision.measured for decision in result.decisions)


class PrologueTimer(ModelTimer):
    """Reports ORT's part 2 ms, the SparseConv with its depthwise prologue ``fused_ms``, ORT's
    depthwise Conv then the SparseConv 1 ms; the whole rewrite 1 ms against ORT's 2 ms."""

    def __init__(self, fused_ms):
        super().__init__(threads=1, library=ortsparse.library_path())
        self.fused_ms = fused_ms

    def fused_ms_of(self, names):
        """The time of the fused SparseConv nodes ``names``."""
        return self.fused_ms

    def part_ms(self, model):
        nodes = [node for node in model.graph.node if node.domain == "ortsparse"]
        if not nodes:
            return 2.0
        fused = any(a.name == "depthwise_kernel_shape" for n in nodes for a in n.attribute)
        return self.fused_ms_of([node.name for node in nodes]) if fused else 1.0

    def compare(self, original, rewritten, feeds, seconds):
        if original.graph.name != "verify":  # the whole model
            return Timing(2.0, 1.0)
        return Timing(self.part_ms(original), self.part_ms(rewritten))


def test_a_depthwise_prologue_measured_faster_stays_fused():
    model = depthwise_separable_block()
    result = verify_rewrite(model, rewrite_keeping(model), timer=PrologueTimer(0.5))
    assert op_types(result.model) == ["SparseConv"]
    (decision,) = [d for d in result.decisions if d.rewritten]
    assert any(step.startswith("depthwise Conv before it") for step in decision.fused)


class OnePrologueFasterTimer(PrologueTimer):
    """PrologueTimer for two blocks: the first block's fused SparseConv is faster than its
    convolutions apart, the second's is not."""

    def __init__(self):
        super().__init__(fused_ms=0.5)

    def fused_ms_of(self, names):
        return 0.99 if names == ["second/pw_SparseConv"] else self.fused_ms


def two_depthwise_blocks():
    """Two depthwise_separable_blocks one after the other, their nodes prefixed first/ and
    second/; the second takes the first's 16 channels."""
    first = onnx.compose.add_prefix(depthwise_separable_block(), "first/")
    second = onnx.compose.add_prefix(depthwise_separable_block(channels=16), "second/")
    model = onnx.compose.merge_models(first, second, io_map=[("first/Y", "second/X")])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_only_the_prologues_measured_no_faster_are_separated_again():
    model = two_depthwise_blocks()
    result = verify_rewrite(model, rewrite_keeping(model), timer=OnePrologueFasterTimer())
    assert op_types(result.model) == [
        "SparseConv",
        "Conv",
        "BatchNormalization",
        "HardSwish",
        "SparseConv",
    ]
    first, second = [d for d in result.decisions if d.rewritten]
    assert any(step.startswith("depthwise Conv before it") for step in first.fused)
    assert not any(step.startswith("depthwise Conv before it") for step in second.fused)


def with_constant_nodes(model, names=None):
    """``model`` with its initializers ``names`` (all where None) written as Constant nodes, as
    paddle2onnx writes weights."""
    moved = [t for t in model.graph.initializer if names is None or t.name in names]
    nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in moved]
    for tensor in moved:
        model.graph.initializer.remove(tensor)
    nodes += model.graph.node
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


@pytest.mark.parametrize("constants", ["initializers", "Constant nodes"])
def test_a_depthwise_prologue_not_faster_than_the_convs_apart_is_separated_again(constants):
    model = depthwise_separable_block()
    if constants == "Constant nodes":
        model = with_constant_nodes(model)
    result = verify_rewrite(model, rewrite_keeping(model), timer=PrologueTimer(0.99))
    assert [op for op in op_types(result.model) if op != "Constant"] == [
        "Conv",
        "BatchNormalization",
        "HardSwish",
        "SparseConv",
    ]
    (node,) = [n for n in result.model.graph.node if n.op_type == "SparseConv"]
    assert not any(a.name.startswith("depthwise_") for a in node.attribute)
    (decision,) = [d for d in result.decisions if d.rewritten]
    assert not any(step.startswith("depthwise Conv before it") for step in decision.fused)
    assert "after ORT's depthwise Conv" in decision.measured
    onnx.checker.check_model(result.model)
    feeds = {"X": np.random.default_rng(0).standard_normal((2, 8, 11, 11)).astype(np.float32)}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


@pytest.mark.parametrize("affine_constants", ["initializers", "Constant nodes"])
def test_a_separated_prologue_leaves_the_affine_its_sparse_conv_folded_in_the_weights(
    affine_constants,
):
    """The SparseConv folded the scale and bias after the activation (FoldInputAffine): apart,
    it reads the activation, not the affine's output, which would apply the affine twice."""
    between = ("BatchNormalization", "HardSwish", "ChannelMul", "ChannelAdd")
    model = depthwise_separable_block(between=between)
    if affine_constants == "Constant nodes":
        model = with_constant_nodes(model, {"d3_by", "d4_by"})
    result = verify_rewrite(model, rewrite_keeping(model), timer=PrologueTimer(0.99))
    assert op_types(result.model) == ["Conv", "BatchNormalization", "HardSwish", "SparseConv"]
    feeds = {"X": np.random.default_rng(0).standard_normal((2, 8, 11, 11)).astype(np.float32)}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


class ChainTimer(ModelTimer):
    """Runs the chains' parts for real but reports: every rewrite part or whole twice as fast as
    ORT's nodes; a SparseConv with a pointwise prologue at ``fused_ms`` against its two nodes' 1 ms;
    the rewrite with its chains fused at ``whole_ms`` against the one without's 10 ms."""

    def __init__(self, fused_ms, whole_ms=5.0):
        super().__init__(threads=1, library=ortsparse.library_path())
        self.fused_ms = fused_ms
        self.whole_ms = whole_ms
        self.chains_timed = 0

    def compare(self, original, rewritten, feeds, seconds):
        fused = any(
            attribute.name == "pointwise_K"
            for node in rewritten.graph.node
            for attribute in node.attribute
        )
        if not fused:
            return Timing(10.0, 5.0)
        if original.graph.name == "verify":  # a part, as verification cuts it out
            self.outputs(original, feeds)
            self.outputs(rewritten, feeds)
            self.chains_timed += 1
            return Timing(1.0, self.fused_ms)
        return Timing(10.0, self.whole_ms)


def test_a_chain_measured_faster_fused_becomes_one_node():
    model = sparse_conv_chain(height=20, width=16)
    timer = ChainTimer(fused_ms=0.5)
    result = verify_rewrite(model, rewrite_keeping(model), timer=timer)
    assert op_types(result.model) == ["SparseConv"]
    assert timer.chains_timed == 1
    reduce, conv = [d for d in result.decisions if d.rewritten]
    assert conv.fused[-1] == "sparse 1x1 SparseConv before it (reduce)"
    assert "sparse 1x1 SparseConv before it" not in " ".join(reduce.fused)
    assert "1 chain(s) of two SparseConv nodes fused" in result.decided_by
    feeds = {"X": np.random.default_rng(0).standard_normal((3, 12, 20, 16)).astype(np.float32)}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


def test_a_bottleneck_whose_residual_is_its_x_is_timed_as_a_chain():
    model = sparse_conv_chain(channels=(12, 8, 12), residual="X")
    timer = ChainTimer(fused_ms=0.5)
    result = verify_rewrite(model, rewrite_keeping(model), timer=timer)
    assert timer.chains_timed == 1
    assert op_types(result.model) == ["SparseConv"]
    feeds = {"X": np.random.default_rng(0).standard_normal((2, 12, 11, 9)).astype(np.float32)}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


def test_a_chain_whose_weights_are_constant_nodes_is_timed():
    # paddle2onnx writes weights and biases as Constant nodes: the chain's first bias, which the
    # fused node holds as an attribute, must come with the two nodes timed apart.
    model = with_constant_nodes(sparse_conv_chain(height=20, width=16))
    timer = ChainTimer(fused_ms=0.5)
    result = verify_rewrite(model, rewrite_keeping(model), timer=timer)
    assert timer.chains_timed == 1
    assert [op for op in op_types(result.model) if op != "Constant"] == ["SparseConv"]
    feeds = {"X": np.random.default_rng(0).standard_normal((1, 12, 20, 16)).astype(np.float32)}
    assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


class ScanOrChainTimer(ChainTimer):
    """ChainTimer that also times the rewrite run one image at a time at ``scan_ms`` against the
    batch at once's 10 ms."""

    def __init__(self, scan_ms):
        super().__init__(fused_ms=0.5)
        self.scan_ms = scan_ms

    def compare(self, original, rewritten, feeds, seconds):
        if op_types(rewritten) == ["Scan"]:
            return Timing(10.0, self.scan_ms)
        return super().compare(original, rewritten, feeds, seconds)


@pytest.mark.parametrize(("scan_ms", "expected"), [(7.0, ["Scan"]), (9.9, ["SparseConv"])])
def test_chains_are_tried_only_where_the_batch_runs_at_once(scan_ms, expected):
    model = sparse_conv_chain()
    timer = ScanOrChainTimer(scan_ms)
    result = verify_rewrite(
        model, rewrite_keeping(model), input_shapes={"X": [4, 12, 11, 9]}, timer=timer
    )
    assert op_types(result.model) == expected
    assert timer.chains_timed == (0 if expected == ["Scan"] else 1)


def test_chains_are_timed_after_the_budget_is_spent():
    model = sparse_conv_chain()
    timer = ChainTimer(fused_ms=0.5)
    result = verify_rewrite(model, rewrite_keeping(model), timer=timer, seconds=0.0)
    assert timer.chains_timed == 1
    assert op_types(result.model) == ["SparseConv"]


@pytest.mark.parametrize(("fused_ms", "whole_ms"), [(0.99, 5.0), (0.5, 9.9)])
def test_a_chain_not_faster_fused_alone_or_in_the_model_stays_two_nodes(fused_ms, whole_ms):
    model = sparse_conv_chain()
    result = verify_rewrite(
        model, rewrite_keeping(model), timer=ChainTimer(fused_ms=fused_ms, whole_ms=whole_ms)
    )
    assert op_types(result.model) == ["SparseConv", "SparseConv"]
    assert not any("SparseConv before it" in " ".join(d.fused) for d in result.decisions)


class ScanTimer(ScriptedTimer):
    """ScriptedTimer that also times the rewrite run one image at a time (a model of one Scan
    node) at ``scan_ms`` against the batch at once's 10 ms."""

    def __init__(self, scan_ms):
        super().__init__()
        self.scan_ms = scan_ms
        self.scans_timed = 0

    def compare(self, original, rewritten, feeds, seconds):
        if op_types(rewritten) == ["Scan"]:
            self.scans_timed += 1
            return Timing(10.0, self.scan_ms)
        return super().compare(original, rewritten, feeds, seconds)


def test_a_batch_runs_one_image_at_a_time_where_that_is_faster():
    model = sparse_mlp()
    timer = ScanTimer(scan_ms=7.0)
    result = verify_rewrite(
        model, rewrite_keeping(model), input_shapes={"A": [4, HIDDEN]}, timer=timer
    )
    assert op_types(result.model) == ["Scan"]
    assert timer.scans_timed == 2
    assert "run one image at a time (a Scan over the batch)" in result.decided_by
    assert all(decision.rewritten for decision in result.decisions)
    for batch in (1, 5):
        feeds = {"A": mlp_input(batch)}
        assert_close(ort_run(result.model, feeds), ort_outputs(model, feeds))


def test_one_image_at_a_time_not_faster_keeps_the_batch_at_once():
    model = sparse_mlp()
    timer = ScanTimer(scan_ms=9.9)
    result = verify_rewrite(
        model, rewrite_keeping(model), input_shapes={"A": [4, HIDDEN]}, timer=timer
    )
    assert op_types(result.model) == ["SparseGemm", "SparseGemm"]
    assert timer.scans_timed == 1
    assert "one image at a time" not in result.decided_by


def test_a_batch_of_one_is_not_run_one_image_at_a_time():
    model = sparse_mlp()
    timer = ScanTimer(scan_ms=1.0)
    result = verify_rewrite(
        model, rewrite_keeping(model), input_shapes={"A": [1, HIDDEN]}, timer=timer
    )
    assert timer.scans_timed == 0
    assert "Scan" not in op_types(result.model)


class AlwaysFasterTimer(ModelTimer):
    """Runs models for real; reports every rewrite, part or whole, twice as fast as its original."""

    def __init__(self):
        super().__init__(threads=1, library=ortsparse.library_path())

    def compare(self, original, rewritten, feeds, seconds):
        return Timing(10.0, 5.0)


def test_a_model_mixing_its_batch_items_is_not_run_one_image_at_a_time():
    # Y = x - mean of x over the batch: one image alone computes zeros.
    model = matmul_then(
        [
            helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=1),
            helper.make_node("Sub", ["x", "mean"], ["Y"]),
        ],
        constants={"axes": np.array([0], np.int64)},
    )
    told = []
    result = verify_rewrite(
        model,
        rewrite_keeping(model),
        input_shapes={"A": [4, CHAIN_K]},
        timer=AlwaysFasterTimer(),
        progress=told.append,
    )
    assert "SparseGemm" in op_types(result.model) and "Scan" not in op_types(result.model)
    assert any(line.startswith("one image at a time: other outputs") for line in told)


def dense_mlp():
    """sparse_mlp with dense weights, which the cost model keeps."""
    model = sparse_mlp()
    rng = np.random.default_rng(3)
    for tensor in model.graph.initializer:
        shape = numpy_helper.to_array(tensor).shape
        dense = rng.standard_normal(shape).astype(np.float32)
        tensor.CopyFrom(numpy_helper.from_array(dense, tensor.name))
    return model


def rewrite_by_cost_model(model):
    def rewrite(keep, convert):
        return rewrite_model(model, keep=keep, convert=convert)

    return rewrite


def test_nodes_the_cost_model_keeps_are_converted_and_kept_where_measured_faster():
    model = dense_mlp()
    assert rewrite_model(model).rewritten_count == 0
    result = verify_rewrite(model, rewrite_by_cost_model(model), timer=ScriptedTimer())
    assert op_types(result.model) == ["SparseGemm", "SparseGemm"]
    for decision in result.decisions:
        assert "converted to be timed with what it fuses" in decision.reason
        assert decision.measured.startswith("measured")


def test_a_converted_node_measured_slower_is_put_back():
    model = dense_mlp()
    timer = ScriptedTimer(slow_nodes=("first",))
    result = verify_rewrite(model, rewrite_by_cost_model(model), timer=timer)
    assert op_types(result.model) == ["MatMul", "Relu", "SparseGemm"]
    first = next(d for d in result.decisions if d.node_name == "first")
    assert not first.rewritten and "not faster on this CPU" in first.reason


def test_a_min_sparsity_threshold_is_not_second_guessed():
    model = dense_mlp()

    def rewrite(keep, convert):
        return rewrite_model(model, min_sparsity=0.5, keep=keep, convert=convert)

    result = verify_rewrite(model, rewrite, timer=ScriptedTimer())
    assert result.model == model and result.rewritten_count == 0


def test_a_depthwise_conv_the_cost_model_keeps_stays_a_conv_for_the_prologue():
    model = depthwise_separable_block()
    result = verify_rewrite(model, rewrite_by_cost_model(model), timer=ScriptedTimer())
    (depthwise,) = [d for d in result.decisions if d.node_name == "dw"]
    assert not depthwise.rewritten
    assert "SparseConv" in op_types(result.model)
    assert not any(
        node.op_type == "SparseConv" and node.name.startswith("dw")
        for node in result.model.graph.node
    )
