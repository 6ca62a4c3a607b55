"""Pruned models from tools/model_builders, rewritten by ortsparse, vs stock ORT on the originals.

Agreement criterion throughout: max |Y_ortsparse - Y_ort| <= 1e-4 * max |Y_ort|, i.e. rtol 1e-4
relative to the largest output magnitude (float32 sums in a different order differ by a few ulps of
the large outputs, which an elementwise rtol would misjudge near zero).
"""

from collections import Counter
from functools import cache

import numpy as np
import onnx
import onnxruntime as ort
import ortsparse
import pytest
from onnx import numpy_helper
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import RewriteResult, rewrite_model

from tools.model_builders import (
    BertConfig,
    MlpConfig,
    ResNetConfig,
    YoloConfig,
    build_bert,
    build_mlp,
    build_resnet,
    build_yolo,
)
from tools.model_builders.pruning import prune_unstructured, rescale_to_norm

RTOL_OF_MAX = 1e-4
THREADS = [1, 2]
# (sparsity, block): unstructured across the range, and 4-block pruning.
PRUNINGS = [(0.0, 1), (0.5, 1), (0.9, 1), (0.99, 1), (1.0, 1), (0.9, 4)]
MLP_BATCHES = [1, 7, 64]
SMALL_MLP = {"layers": 3, "hidden": 256}
SMALL_BERT = {"layers": 2, "hidden": 128, "heads": 4, "intermediate": 512}
BERT_INPUT_SHAPES = [(2, 16, 128), (1, 5, 128)]  # seq 16, and a short sequence
CONV_PRUNINGS = [(0.0, 1), (0.9, 1), (1.0, 1), (0.9, 4)]
SMALL_RESNET = {"stages": (1, 1, 1, 1), "width": 16, "resolution": 32}
SMALL_YOLO = {"width": 0.125, "resolution": 64}


def _session(model: onnx.ModelProto, threads: int, with_ortsparse: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if with_ortsparse:
        options.register_custom_ops_library(ortsparse.library_path())
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _assert_same_outputs(
    original: onnx.ModelProto, rewritten: onnx.ModelProto, threads: int, inputs
) -> None:
    reference = _session(original, threads, with_ortsparse=False)
    candidate = _session(rewritten, threads, with_ortsparse=True)
    name = reference.get_inputs()[0].name
    for x in inputs:
        expected = reference.run(None, {name: x})[0]
        actual = candidate.run(None, {name: x})[0]
        assert actual.shape == expected.shape
        error, scale = np.max(np.abs(actual - expected)), np.max(np.abs(expected))
        assert error <= RTOL_OF_MAX * scale, f"input {x.shape}: max |diff| {error}, max |Y| {scale}"


def _random_inputs(*shapes):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(shape, dtype=np.float32) for shape in shapes]


def _mlp_inputs():
    return _random_inputs(*[(batch, SMALL_MLP["hidden"]) for batch in MLP_BATCHES])


def _sparse_nodes(model: onnx.ModelProto, op_type: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == op_type and n.domain == ortsparse.OP_DOMAIN]


def _sparse_gemm_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return _sparse_nodes(model, "SparseGemm")


def _string_attribute(node: onnx.NodeProto, name: str) -> str:
    return next(a.s.decode() for a in node.attribute if a.name == name)


def _int_attribute(node: onnx.NodeProto, name: str) -> int:
    return next(a.i for a in node.attribute if a.name == name)


def _force_rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, RewriteResult]:
    # min_sparsity 0 forces the rewrite even of dense layers, so every pruning level is exercised.
    return model, rewrite_model(model, min_sparsity=0.0)


@cache
def _mlp(sparsity: float, block: int, gemm: bool = False) -> tuple[onnx.ModelProto, RewriteResult]:
    return _force_rewrite(
        build_mlp(MlpConfig(**SMALL_MLP, sparsity=sparsity, block=block, gemm=gemm))
    )


@cache
def _bert(sparsity: float, block: int) -> tuple[onnx.ModelProto, RewriteResult]:
    return _force_rewrite(build_bert(BertConfig(**SMALL_BERT, sparsity=sparsity, block=block)))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize(("sparsity", "block"), PRUNINGS)
def test_mlp_rewritten_matches_ort(sparsity, block, threads):
    model, result = _mlp(sparsity, block)
    assert result.rewritten_count == SMALL_MLP["layers"]
    if block == 4:  # so the block4 kernels are what this case checks
        assert {d.format for d in result.decisions} == {"block4"}
    assert len(_sparse_gemm_nodes(result.model)) == SMALL_MLP["layers"]
    _assert_same_outputs(model, result.model, threads, _mlp_inputs())


@pytest.mark.parametrize("threads", THREADS)
def test_gemm_form_mlp_rewritten_matches_ort(threads):
    model, result = _mlp(0.9, 1, gemm=True)
    assert result.rewritten_count == SMALL_MLP["layers"]
    _assert_same_outputs(model, result.model, threads, _mlp_inputs())


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize(("sparsity", "block"), PRUNINGS)
def test_bert_rewritten_matches_ort(sparsity, block, threads):
    model, result = _bert(sparsity, block)
    assert result.rewritten_count == 6 * SMALL_BERT["layers"]
    if block == 4:
        assert {d.format for d in result.decisions if d.rewritten} == {"block4"}
    _assert_same_outputs(model, result.model, threads, _random_inputs(*BERT_INPUT_SHAPES))


def test_rewritten_bert_fuses_bias_gelu_and_residuals():
    layers = SMALL_BERT["layers"]
    _, result = _bert(0.9, 1)
    nodes = _sparse_gemm_nodes(result.model)
    assert len(nodes) == 6 * layers
    assert sum(_string_attribute(n, "activation") == "gelu" for n in nodes) == layers
    with_residual = [n for n in nodes if len(n.input) == 6 and n.input[5]]
    assert len(with_residual) == 2 * layers  # attention output dense and FFN output dense
    assert all(len(n.input) >= 5 and n.input[4] for n in nodes)  # every Linear's bias is fused
    # The graph keeps no Erf: every GELU went into a SparseGemm epilogue.
    assert not any(n.op_type == "Erf" for n in result.model.graph.node)
    fused = [d.fused for d in result.decisions if d.rewritten]
    assert sum("Gelu(erf)" in f for f in fused) == layers


@pytest.mark.parametrize("threads", THREADS)
def test_bert_with_ort_contrib_gelu_is_rewritten_as_the_erf_form_is(threads):
    # ORT's optimizer writes GELU as one com.microsoft Gelu, which ONNX's shape inference does not
    # know: the MatMuls after it are judged all the same, and the Gelu fuses into its SparseGemm.
    model, result = _force_rewrite(
        build_bert(BertConfig(**SMALL_BERT, sparsity=0.9, gelu="contrib"))
    )
    assert result.rewritten_count == 6 * SMALL_BERT["layers"]
    assert not any(n.domain == "com.microsoft" for n in result.model.graph.node)
    fused = [d.fused for d in result.decisions if d.rewritten]
    assert sum("Gelu (com.microsoft)" in f for f in fused) == SMALL_BERT["layers"]
    _assert_same_outputs(model, result.model, threads, _random_inputs(*BERT_INPUT_SHAPES))


@pytest.mark.parametrize("threads", THREADS)
def test_bert_as_ort_optimizer_fuses_it_has_every_projection_rewritten(threads):
    # Attention's QKV projection becomes a SparseGemm feeding MultiHeadAttention; BiasGelu folds
    # into the FFN's first SparseGemm; SkipLayerNormalization stays ORT's.
    model, result = _force_rewrite(
        build_bert(BertConfig(**SMALL_BERT, sparsity=0.9, graph="ort-optimized"))
    )
    layers = SMALL_BERT["layers"]
    assert result.rewritten_count == 4 * layers
    assert Counter(d.op_type for d in result.decisions if d.rewritten) == {
        "Attention": layers,
        "MatMul": 3 * layers,
    }
    contrib_ops = Counter(n.op_type for n in result.model.graph.node if n.domain == "com.microsoft")
    assert contrib_ops == {"MultiHeadAttention": layers, "SkipLayerNormalization": 2 * layers}
    fused = [d.fused for d in result.decisions if d.rewritten]
    assert sum("Gelu (com.microsoft)" in f for f in fused) == layers
    _assert_same_outputs(model, result.model, threads, _random_inputs(*BERT_INPUT_SHAPES))


def _mlp_with_one_pruned_layer() -> onnx.ModelProto:
    """The dense small MLP with only its middle layer's weight pruned to 99%."""
    model = build_mlp(MlpConfig(**SMALL_MLP, sparsity=0.0))
    middle = next(init for init in model.graph.initializer if init.name == "layers.1.weight")
    dense = numpy_helper.to_array(middle)
    pruned = rescale_to_norm(prune_unstructured(dense, 0.99), dense)
    middle.CopyFrom(numpy_helper.from_array(pruned, middle.name))
    return model


@pytest.mark.parametrize("threads", THREADS)
def test_default_threshold_keeps_dense_layers(threads):
    model = _mlp_with_one_pruned_layer()
    result = rewrite_model(model)
    rewritten = {d.node_name: d.rewritten for d in result.decisions}
    assert rewritten == {
        "/layers.0/MatMul": False,
        "/layers.1/MatMul": True,
        "/layers.2/MatMul": False,
    }
    assert [n.op_type for n in result.model.graph.node].count("MatMul") == 2
    _assert_same_outputs(model, result.model, threads, _mlp_inputs())


@cache
def _resnet(sparsity: float, block: int) -> tuple[onnx.ModelProto, RewriteResult]:
    config = ResNetConfig(**SMALL_RESNET, sparsity=sparsity, block=block)
    return _force_rewrite(build_resnet(config))


@cache
def _yolo(sparsity: float, block: int) -> tuple[onnx.ModelProto, RewriteResult]:
    return _force_rewrite(build_yolo(YoloConfig(**SMALL_YOLO, sparsity=sparsity, block=block)))


def _image_inputs(resolution: int) -> list[np.ndarray]:
    return _random_inputs(*[(batch, 3, resolution, resolution) for batch in (1, 8)])


def _op_count(model: onnx.ModelProto, op_type: str) -> int:
    return sum(node.op_type == op_type for node in model.graph.node)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize(("sparsity", "block"), CONV_PRUNINGS)
def test_resnet_rewritten_matches_ort(sparsity, block, threads):
    model, result = _resnet(sparsity, block)
    assert result.rewritten_count == len(result.decisions)  # every Conv and the fc Gemm
    _assert_same_outputs(
        model, result.model, threads, _image_inputs(SMALL_RESNET["resolution"])
    )


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize(("sparsity", "block"), CONV_PRUNINGS)
def test_yolo_rewritten_matches_ort(sparsity, block, threads):
    model, result = _yolo(sparsity, block)
    assert result.rewritten_count == len(result.decisions) == _op_count(model, "Conv")
    _assert_same_outputs(model, result.model, threads, _image_inputs(SMALL_YOLO["resolution"]))


def test_rewritten_resnet_folds_batch_norms_and_fuses_residual_relus():
    model, result = _resnet(0.9, 1)
    convs = _sparse_nodes(result.model, "SparseConv")
    assert len(convs) == _op_count(model, "Conv")
    assert _op_count(result.model, "BatchNormalization") == 0
    assert all(d.fused[0] == "BatchNormalization" for d in result.decisions if d.op_type == "Conv")
    with_residual = [n for n in convs if len(n.input) == 6 and n.input[5]]
    assert len(with_residual) == sum(SMALL_RESNET["stages"])  # one per bottleneck
    for node in with_residual:
        assert _string_attribute(node, "activation") == "relu"
        assert _int_attribute(node, "residual_before_activation") == 1
    # Only the maxpool, the pooling head and the (fused) Gemm remain besides the SparseConvs.
    assert _op_count(result.model, "Add") == _op_count(result.model, "Relu") == 0


def test_rewritten_yolo_fuses_silu_the_detect_layout_and_the_concats():
    model, result = _yolo(0.9, 1)
    convs = _sparse_nodes(result.model, "SparseConv")
    activations = Counter(_string_attribute(n, "activation") for n in convs)
    # The detect convs take the output's Sigmoid, through their Reshapes and the Concat. Each
    # C3's cv1 and cv2 read the same input: 8 pairs merged into one SparseConv with 2 outputs.
    assert activations == {"silu": 57 - 8, "sigmoid": 3}
    split = [n for n in convs if len(n.output) == 2]
    assert len(split) == 8 and all(_int_attribute(n, "output_split") > 0 for n in split)
    assert _op_count(result.model, "Mul") == 0
    assert _op_count(result.model, "Sigmoid") == 0
    assert _op_count(result.model, "Add") == 0  # the shortcuts are fused residuals
    # Each detect conv writes its anchors' predictions channels last, in place of a Transpose.
    groups = [attr.i for n in convs for attr in n.attribute if attr.name == "output_channel_groups"]
    assert groups == [3, 3, 3]
    assert _op_count(result.model, "Transpose") == 0
    # The convs after the Concats read their inputs in place: each C3's cv3 (2 parts), the
    # merged cv1 and cv2 of the head's C3s (2 parts) and SPPF's cv2 (4 parts). Only the Concat of
    # the detect outputs is left. (Inputs: X, 3 of weights, bias, residual, then more parts.)
    parts = Counter(len(n.input) - 5 for n in convs if len(n.input) > 6)
    assert parts == {2: 8 + 4, 4: 1}
    assert _op_count(result.model, "Concat") == 1
    for op_type in ("Resize", "MaxPool", "Reshape"):
        assert _op_count(result.model, op_type) == _op_count(model, op_type)


def test_resnet50_at_224_rewritten_matches_ort():
    """The whole network at its real size, with the cost model choosing what to rewrite."""
    model = build_resnet(ResNetConfig(sparsity=0.9))
    result = rewrite_model(model)
    assert len(_sparse_nodes(result.model, "SparseConv")) == result.rewritten_count > 0
    _assert_same_outputs(model, result.model, 2, _random_inputs((1, 3, 224, 224)))


def _mobilenet_block_model(sparsity: float) -> onnx.ModelProto:
    """Stem, then a MobileNetV2 inverted residual: 1x1 expand + ReLU6, 3x3 depthwise + BN + ReLU6,
    1x1 project + BN, residual Add; weights pruned to ``sparsity``."""
    from onnx import helper

    rng = np.random.default_rng(7)
    c, expanded, size = 8, 32, 16

    def weight(name, shape):
        dense = (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
        return numpy_helper.from_array(rescale_to_norm(prune_unstructured(dense, sparsity), dense), name)

    def batch_norm(prefix, channels):
        return [
            numpy_helper.from_array(rng.uniform(0.5, 1.5, channels).astype(np.float32), f"{prefix}_scale"),
            numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32) * 0.1, f"{prefix}_bias"),
            numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32) * 0.1, f"{prefix}_mean"),
            numpy_helper.from_array(rng.uniform(0.5, 1.5, channels).astype(np.float32), f"{prefix}_var"),
        ]

    initializers = [
        weight("stem_w", (c, 3, 3, 3)),
        weight("expand_w", (expanded, c, 1, 1)),
        weight("dw_w", (expanded, 1, 3, 3)),
        weight("project_w", (c, expanded, 1, 1)),
        numpy_helper.from_array(np.float32(0.0), "zero"),
        numpy_helper.from_array(np.float32(6.0), "six"),
        *batch_norm("dw_bn", expanded),
        *batch_norm("project_bn", c),
    ]
    bn = ["scale", "bias", "mean", "var"]
    nodes = [
        helper.make_node("Conv", ["image", "stem_w"], ["stem"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["stem", "expand_w"], ["expand"]),
        helper.make_node("Clip", ["expand", "zero", "six"], ["expand_act"]),
        helper.make_node("Conv", ["expand_act", "dw_w"], ["dw"], group=expanded, pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["dw", *[f"dw_bn_{p}" for p in bn]], ["dw_bn"]),
        helper.make_node("Clip", ["dw_bn", "zero", "six"], ["dw_act"]),
        helper.make_node("Conv", ["dw_act", "project_w"], ["project"]),
        helper.make_node("BatchNormalization", ["project", *[f"project_bn_{p}" for p in bn]], ["project_bn"]),
        helper.make_node("Add", ["project_bn", "stem"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mobilenet_block",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["batch", c, size, size])],
        initializers,
    )
    return newest_model_versions().make_model(graph)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_depthwise_separable_block_rewritten_matches_ort(sparsity, threads):
    model, result = _force_rewrite(_mobilenet_block_model(sparsity))
    assert result.rewritten_count == 4 and _op_count(result.model, "Conv") == 0
    # BatchNormalization folded and ReLU6 fused into the depthwise conv; the residual Add fused.
    assert _op_count(result.model, "BatchNormalization") == _op_count(result.model, "Clip") == 0
    assert _op_count(result.model, "Add") == 0
    _assert_same_outputs(model, result.model, threads, _image_inputs(16))
