"""Never slower than ORT, as a measured property: a rewrite is timed against its original on this
CPU, and the original nodes are put back wherever ortsparse loses.

0. The nodes the cost model's prediction kept (grouped Convs aside) are converted too: the
   prediction is of the node alone, and a node that fuses others (an activation exported as four
   nodes, a depthwise Conv as its prologue, the reorders around ORT's NCHWc convolutions) may
   pay where it alone would not (PP-OCR's angle classifier, where the cost model kept every
   convolution). The steps below decide each by measurement.
1. The original model runs once on random inputs (of the shapes asked for, else batch 1 and 64
   for every other symbolic dim), keeping the values every ortsparse node of the rewrite reads.
2. Each ortsparse node is timed alone against the part of the original graph it replaces: the
   nodes that compute its outputs from its inputs (a MatMul with its bias and activation, a QDQ
   group, two sibling convs merged into one, ...), both fed those values, in alternating rounds
   on the same threads. A node not at least GROUP_MARGIN faster than its original keeps it: the
   MatMul/Gemm/Conv nodes in that part are rewritten again as kept, measured slower. A node
   whose part of the original cannot be isolated (it reads a value the original never computes)
   is left to the next step. A SparseGemm or SparseConv measured under SINGLE_THREAD_MAX_MS
   alone, where the intra-op pool's hand-offs weigh, is timed again running on the calling
   thread (attribute single_thread), and keeps that where it is GROUP_MARGIN faster. A
   SparseConv that took a depthwise Conv as its prologue is first timed against the same two
   convolutions apart (ORT's depthwise Conv feeding the SparseConv), which the node becomes
   again unless the fused op is GROUP_MARGIN faster: the prologue pays only where ortsparse's
   depthwise rows beat ORT's depthwise kernel and the reorders around it.
3. The whole rewrite runs on the same inputs as the original first: where ORT computes the
   original exactly (no integer products), float outputs further apart than OUTPUT_RTOL of the
   largest mean a bug, and the original is kept with a warning. Then it is timed against the
   whole original. A node faster alone may still lose in the graph, where ORT's nodes share
   layouts and fusions (its QLinearConv chains stay NHWC, its Conv chains NCHWc): unless the
   whole rewrite is faster by GROUP_MARGIN too, it is made again keeping only the nodes measured
   fastest alone (those at or above the first, second, then third quartile of the speedups
   measured) and timed again; if none is faster, the original is returned as it is. A whole
   rewrite measured faster is timed once more, and kept only if faster again.
4. Where the inputs hold a batch of more than one, the kept rewrite is also run one image at a
   time (one_image_at_a_time: a Scan over the batch) and becomes that where its outputs are the
   same and it is GROUP_MARGIN faster, twice: run layer by layer, a batch's activations outgrow
   the caches that one image's fit in.
5. Unless the rewrite now runs one image at a time (its nodes would see a batch of one, not the
   batch timed here), chains of two SparseConv nodes, a sparse 1x1 whose output only a second
   SparseConv reads, are tried as one op that computes the 1x1's output band by band (a
   pointwise prologue: FusePointwisePrologue). Each fused node is timed against the two, and
   kept where GROUP_MARGIN faster; the rewrite with those kept must then be faster than the one
   without, twice, as a whole. The halo rows a band recomputes and the parallelism a small image
   loses can cost more than the memory traffic it saves: measured, not assumed.

Each comparison is the median of alternating rounds of each model's mean time per run, which is
what throughput sees. The time spent is bounded (``seconds``), with a line of progress per step;
a node reached after the budget is spent is judged by the whole-model step only.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnxruntime as ort

import ortsparse
from ortsparse.inputs import InputError, InputSpec, model_input_specs, random_inputs, to_feed
from ortsparse.rewriter.conversion import display_name
from ortsparse.rewriter.decisions import Decision, RewriteResult
from ortsparse.rewriter.graph import attribute_values
from ortsparse.rewriter.model_io import Rewrite
from ortsparse.rewriter.one_image_at_a_time import NotBatched, one_image_at_a_time
from ortsparse.rewriter.policy import kept_by_prediction
from ortsparse.rewriter.rules.fold_input_affine import folded_affine_nodes
from ortsparse.rewriter.rules.fuse_depthwise_prologue import FuseDepthwisePrologue
from ortsparse.rewriter.rules.fuse_pointwise_prologue import (
    FusePointwisePrologue,
    fuse_pointwise_prologues,
)
from ortsparse.rewriter.sparse_conv import DepthwisePrologue
from ortsparse.rewriter.sparse_op import DOMAIN

Progress = Callable[[str], None]

# The most verification may take; it takes less where the models run fast (NODE_SECONDS and
# MODEL_SECONDS of timing per comparison).
DEFAULT_SECONDS = 60.0
# A node, and then the whole rewrite, must be this much faster than its original, measured, to
# stay: within the noise of repeated timings, an even result keeps ORT's nodes.
GROUP_MARGIN = 0.97
# Size of a symbolic input dim that is not the batch, where no shape is given.
SYMBOLIC_DIM = 64
# Timing per comparison: ROUNDS alternating rounds of at least one run of each model, in about
# NODE_SECONDS for one node, MODEL_SECONDS for the whole model, unless the budget left is less.
ROUNDS = 7
NODE_SECONDS = 0.25
MODEL_SECONDS = 2.0
# Outputs of a rewrite within this share of the original's largest output agree (float sums in
# another order, vectorized activations: about 1e-6).
OUTPUT_RTOL = 1e-3
# A SparseGemm or SparseConv faster than this alone (with more than one thread) is timed on the
# calling thread too: the pool's hand-offs, microseconds each, are a share of its time above the
# noise there.
SINGLE_THREAD_MAX_MS = 0.2
SINGLE_THREAD_OPS = ("SparseGemm", "SparseConv")
# Share of the budget kept for the whole-model comparison, and the least time given one node.
WHOLE_MODEL_SHARE = 0.25
MIN_NODE_SECONDS = 0.05


class VerificationError(Exception):
    """The models cannot be timed here (inputs ortsparse cannot make, a model that fails to run)."""


@dataclass(frozen=True)
class Timing:
    original_ms: float
    rewritten_ms: float
    where: str = ""  # how the rewrite ran, where that is not the usual way

    @property
    def speedup(self) -> float:
        return self.original_ms / self.rewritten_ms

    @property
    def rewritten_faster(self) -> bool:
        """Whether the rewritten side is GROUP_MARGIN faster: beyond the noise of timing."""
        return self.rewritten_ms < self.original_ms * GROUP_MARGIN

    def describe(self) -> str:
        return (
            f"measured {self.rewritten_ms:.3g} ms{self.where} against ORT's "
            f"{self.original_ms:.3g} ms ({self.speedup:.2f}x)"
        )


def verify_rewrite(
    original: onnx.ModelProto,
    rewrite: Rewrite,
    *,
    threads: int = 0,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    seconds: float = DEFAULT_SECONDS,
    progress: Progress | None = None,
    timer: ModelTimer | None = None,
) -> RewriteResult:
    """The rewrite of ``original`` that ``rewrite`` makes (given the nodes to keep and those to
    convert whatever the cost model predicts), with the nodes measured slower than ORT kept, or
    ``original`` unchanged where the whole rewrite is not faster. ``threads``: ORT's intra-op
    threads, 0 for its default (``timer`` replaces the ModelTimer that runs with them). The
    decisions record what was measured; ``decided_by`` says how the rewrite was verified."""
    tell = progress or (lambda message: None)
    result = rewrite({}, ())
    # Where a node's rewrite fuses others (an activation written as four nodes, a depthwise
    # Conv), it may pay where the node alone, as the cost model predicts it, does not: those the
    # prediction kept are converted too, for the measurements below to decide.
    convert = _kept_by_prediction(original, result)
    if convert:
        tell(f"converting the {len(convert)} node(s) the cost model kept too, to time them")
        result = rewrite({}, convert)
    if not result.rewritten_count:
        return result
    deadline = time.monotonic() + seconds
    timer = timer or ModelTimer(threads, ortsparse.library_path())
    try:
        feeds, shapes = _random_feeds(original, input_shapes)
        tell(f"verifying on this CPU with inputs {_format_shapes(shapes)}, {_threads(threads)}")
        groups = _groups(original, result)
        values = timer.values(original, feeds, {name for group in groups for name in group.inputs})
    except VerificationError as error:
        tell(f"not verified: {error}")
        return replace(result, decided_by=f"{result.decided_by}; not verified: {error}")

    timings: dict[str, Timing] = {}
    slower: dict[str, Decision] = {}
    single_threaded: set[str] = set()  # names of the ortsparse nodes to run on the calling thread
    # SparseConv nodes to run after ORT's depthwise Conv rather than with it as their prologue.
    separated: dict[str, _Prologue] = {}
    decisions = {decision.node_name: decision for decision in result.decisions}
    for index, group in enumerate(groups, 1):
        left = deadline - time.monotonic() - seconds * WHOLE_MODEL_SHARE
        if left < MIN_NODE_SECONDS:
            tell(f"[{index}/{len(groups)}] {group.label}: no time left, judged with the model")
            continue
        budget = min(NODE_SECONDS, max(MIN_NODE_SECONDS, left / (len(groups) - index + 1)))
        group_feeds = {name: values[name] for name in group.inputs}
        try:
            original_part, rewritten_part = group.models(original, result.model, values)
            steps = [step for name in group.decisions for step in decisions[name].fused]
            prologue = _prologue_of(original, group, steps)
            if prologue is not None:
                apart = _without_prologues(original, rewritten_part, {prologue.node: prologue})
                fused = timer.compare(apart, rewritten_part, group_feeds, budget)
                together = fused.rewritten_faster
                if not together:
                    separated[prologue.node] = prologue
                    rewritten_part = apart
                tell(
                    f"[{index}/{len(groups)}] {group.label}: with its depthwise prologue "
                    f"{fused.rewritten_ms:.3g} ms, apart {fused.original_ms:.3g} ms: "
                    f"{'fused' if together else 'apart'}"
                )
            timing = timer.compare(original_part, rewritten_part, group_feeds, budget)
            if _may_gain_on_one_thread(timer, group, timing):
                alone = _single_threaded(rewritten_part, {group.rewritten_node.name})
                pool = timer.compare(rewritten_part, alone, group_feeds, budget)
                if pool.rewritten_faster:
                    single_threaded.add(group.rewritten_node.name)
                    timing = timer.compare(original_part, alone, group_feeds, budget)
        except VerificationError as error:
            tell(f"[{index}/{len(groups)}] {group.label}: not timed alone ({error})")
            continue
        if group.rewritten_node.name in single_threaded:
            timing = replace(timing, where=" on the calling thread")
        if group.rewritten_node.name in separated:
            timing = replace(timing, where=timing.where + " after ORT's depthwise Conv")
        faster = timing.rewritten_faster
        verdict = "kept" if faster else "put back ORT's nodes"
        tell(f"[{index}/{len(groups)}] {group.label}: {timing.describe()}, {verdict}")
        for name in group.decisions:
            timings[name] = timing
            if not faster:
                slower[name] = _kept_as_measured(result, name, timing)

    def rewrite_as_measured(keep: Mapping[str, Decision]) -> RewriteResult:
        made = rewrite(keep, convert)
        model = _without_prologues(original, made.model, separated)
        apart = {name for prologue in separated.values() for name in prologue.decisions}
        decisions = [
            _prologue_separated(decision) if decision.node_name in apart else decision
            for decision in made.decisions
        ]
        return replace(made, model=_single_threaded(model, single_threaded), decisions=decisions)

    first = result
    if slower or single_threaded or separated:
        if slower:
            tell(f"rewriting again without the {len(slower)} node(s) measured slower")
        result = rewrite_as_measured(slower)
    summary = f"verified on this CPU ({_threads(threads)}, inputs {_format_shapes(shapes)})"
    # Nodes faster alone may still lose in the graph, where ORT's own nodes share layouts and
    # fusions that a node alone cannot: if the whole rewrite is not faster, ever fewer of them
    # (those measured fastest alone) are kept until it is.
    for required in _required_speedups(timings, slower):
        if required > 1:
            kept = {
                name: _kept_below(first, name, timings[name], required)
                for name in timings
                if name not in slower and timings[name].speedup < required
            }
            tell(f"rewriting again with only the nodes measured at least {required:.2f}x faster")
            result = rewrite_as_measured({**slower, **kept})
            if not result.rewritten_count:
                break
        whole_budget = min(MODEL_SECONDS, max(MIN_NODE_SECONDS, deadline - time.monotonic()))
        try:
            disagreement = _float_disagreement(timer, original, result.model, feeds)
            whole = timer.compare(original, result.model, feeds, whole_budget)
        except VerificationError as error:
            tell(f"the rewrite failed to run here ({error}): the original is kept")
            return _original_kept(original, result, f"the rewrite failed to run ({error})")
        if disagreement:
            warnings.warn(
                f"ortsparse's rewrite computes other outputs than the original ({disagreement}); "
                "the original is kept. This is a bug: please report it with the model.",
                RuntimeWarning,
                2,
            )
            tell(f"the rewrite's outputs differ from ORT's ({disagreement}): the original is kept")
            return _original_kept(original, result, f"its outputs differ ({disagreement})")
        tell(f"whole model: {whole.describe()}")
        if whole.rewritten_faster:
            # A win must hold twice: on a busy machine one comparison of a few seconds swung
            # by 30% and more (PP-LCNet: a rewrite measured 1.28x ran at 0.88x in the benchmark).
            whole = timer.compare(original, result.model, feeds, whole_budget)
            tell(f"whole model, again: {whole.describe()}")
        if whole.rewritten_faster:
            decisions = [
                replace(decision, measured=timings[decision.node_name].describe())
                if decision.node_name in timings
                else decision
                for decision in result.decisions
            ]
            decided_by = f"{result.decided_by}; {summary}: whole model {whole.describe()}"
            kept = RewriteResult(result.model, decisions, decided_by)
            scanned = _one_image_at_a_time_if_faster(timer, kept, feeds, shapes, whole_budget, tell)
            if scanned is not kept:
                # Run one image at a time, every node sees a batch of one, not the batch the
                # chains would be timed at here.
                return scanned
            return _pointwise_prologues_if_faster(
                timer, original, kept, feeds, deadline, whole_budget, tell
            )
        if time.monotonic() > deadline:
            break
    reason = "no rewrite measured faster than ORT's nodes on the whole model"
    return _original_kept(original, result, reason, summary)


def _kept_by_prediction(original: onnx.ModelProto, result: RewriteResult) -> list[str]:
    """The nodes the cost model's prediction kept in ``result``, grouped Convs aside: a depthwise
    Conv's block-diagonal matrix is no SparseConv's to win, and FuseDepthwisePrologue takes it
    into the 1x1 after it only while it stays a Conv."""
    grouped = {
        display_name(node)
        for node in original.graph.node
        if node.op_type == "Conv" and attribute_values(node).get("group", 1) > 1
    }
    return [
        decision.node_name
        for decision in result.decisions
        if kept_by_prediction(decision) and decision.node_name not in grouped
    ]


def _pointwise_prologues_if_faster(
    timer: ModelTimer,
    original: onnx.ModelProto,
    result: RewriteResult,
    feeds: Mapping[str, np.ndarray],
    deadline: float,
    seconds: float,
    tell: Progress,
) -> RewriteResult:
    """``result`` with the SparseConv chains whose fused op (a pointwise prologue) is measured
    GROUP_MARGIN faster than the two nodes, where the whole rewrite is then so too, twice; else
    ``result``."""
    model = result.model
    ours = {node.name for node in model.graph.node if node.domain == DOMAIN}
    candidate, fused = fuse_pointwise_prologues(model, ours)
    if not fused:
        return result
    by_name = {node.name: node for node in model.graph.node}
    fused_nodes = {node.name: node for node in candidate.graph.node}
    constants = {tensor.name for tensor in candidate.graph.initializer}
    try:
        values = timer.values(
            original,
            feeds,
            {n for name, _ in fused for n in fused_nodes[name].input if n and n not in constants},
        )
    except VerificationError as error:
        tell(f"chains of two SparseConv nodes: not tried ({error})")
        return result
    chosen: set[str] = set()
    for index, (name, _) in enumerate(fused, 1):
        label = f"[{index}/{len(fused)}] chain ending in {name}"
        # Past the deadline each pair still gets the least time a node gets: a pair of nodes
        # takes a small share of one whole-model comparison, which this step makes anyway.
        left = (deadline - time.monotonic()) / (len(fused) - index + 1)
        budget = max(MIN_NODE_SECONDS, min(NODE_SECONDS, left))
        node = fused_nodes[name]
        # A bottleneck's residual is often the chain's own X.
        inputs = list(dict.fromkeys(n for n in node.input if n and n not in constants))
        consumer = by_name[name]
        apart = [_producer_of(model, consumer.input[0]), consumer]
        outputs = [output for output in node.output if output]
        try:
            typed = _part_inputs(inputs, values)
            timing = timer.compare(
                _model_of(model, apart, typed, outputs),
                _model_of(candidate, [node], typed, outputs),
                {n: values[n] for n in inputs},
                budget,
            )
        except VerificationError as error:
            tell(f"{label}: not timed ({error})")
            continue
        verdict = "fused" if timing.rewritten_faster else "apart"
        tell(
            f"{label}: with its sparse 1x1 prologue {timing.rewritten_ms:.3g} ms, as two nodes "
            f"{timing.original_ms:.3g} ms: {verdict}"
        )
        if timing.rewritten_faster:
            chosen.add(name)
    if not chosen:
        return result
    chained, fused = fuse_pointwise_prologues(model, chosen)
    try:
        faster, measured = _faster_twice(timer, model, chained, feeds, seconds, "apart")
    except VerificationError as error:
        tell(f"chains of two SparseConv nodes: the fused rewrite does not run ({error})")
        return result
    tell(f"{len(fused)} chain(s) fused: {measured}, {'kept' if faster else 'not kept'}")
    if not faster:
        return result
    return replace(
        result,
        model=chained,
        decisions=_chains_recorded(original, model, fused, result.decisions),
        decided_by=f"{result.decided_by}; {len(fused)} chain(s) of two SparseConv nodes fused: "
        f"{measured}",
    )


def _producer_of(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if name in node.output)


def _chains_recorded(
    original: onnx.ModelProto,
    model: onnx.ModelProto,
    fused: Sequence[tuple[str, str]],
    decisions: Sequence[Decision],
) -> list[Decision]:
    """``decisions`` with each fused chain's second convolution recording the first: the
    original MatMul/Gemm/Conv nodes that compute each SparseConv of ``model``."""
    producers = {output: node for node in original.graph.node for output in node.output}
    constants = {tensor.name for tensor in original.graph.initializer}
    by_name = {node.name: node for node in model.graph.node}
    decided = {decision.node_name for decision in decisions if decision.rewritten}

    def decided_in(node: onnx.NodeProto) -> list[str]:
        inputs = {name for name in node.input if name and name not in constants}
        region = _region(producers, constants, inputs, [node.output[0]]) or []
        return [display_name(n) for n in region if display_name(n) in decided]

    steps: dict[str, str] = {}
    for name, _ in fused:
        consumer = by_name[name]
        first = decided_in(_producer_of(model, consumer.input[0]))
        for decision_name in set(decided_in(consumer)) - set(first):
            steps[decision_name] = f"{FusePointwisePrologue.label} ({', '.join(first)})"
    return [
        replace(decision, fused=[*decision.fused, steps[decision.node_name]])
        if decision.node_name in steps
        else decision
        for decision in decisions
    ]


def _one_image_at_a_time_if_faster(
    timer: ModelTimer,
    result: RewriteResult,
    feeds: Mapping[str, np.ndarray],
    shapes: Mapping[str, Sequence[int]],
    seconds: float,
    tell: Progress,
) -> RewriteResult:
    """``result`` run one image at a time where the inputs' batch is more than one and that is
    measured the same outputs and GROUP_MARGIN faster, twice; else ``result``."""
    batches = {shape[0] for shape in shapes.values() if len(shape)}
    if len(batches) != 1 or batches.pop() < 2:
        return result
    try:
        scanned = one_image_at_a_time(result.model)
    except NotBatched as error:
        tell(f"one image at a time: not tried ({error})")
        return result
    try:
        disagreement = _disagreement(timer, result.model, scanned, feeds)
        if disagreement:
            tell(f"one image at a time: other outputs ({disagreement}), not kept")
            return result
        faster, measured = _faster_twice(
            timer, result.model, scanned, feeds, seconds, "for the batch at once"
        )
    except VerificationError as error:
        tell(f"one image at a time: does not run ({error})")
        return result
    tell(f"one image at a time: {measured}, {'kept' if faster else 'not kept'}")
    if not faster:
        return result
    decided_by = f"{result.decided_by}; run one image at a time (a Scan over the batch): {measured}"
    return replace(result, model=scanned, decided_by=decided_by)


def _faster_twice(
    timer: ModelTimer,
    model: onnx.ModelProto,
    candidate: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    seconds: float,
    model_side: str,
) -> tuple[bool, str]:
    """Whether ``candidate`` is GROUP_MARGIN faster than ``model``, twice (a second time only
    after a first win), and what was measured, ``model_side`` saying what ``model`` is."""
    timings = [timer.compare(model, candidate, feeds, seconds)]
    if timings[0].rewritten_faster:
        timings.append(timer.compare(model, candidate, feeds, seconds))
    measured = ", then ".join(
        f"{t.rewritten_ms:.3g} ms against {t.original_ms:.3g} ms {model_side} ({t.speedup:.2f}x)"
        for t in timings
    )
    return all(t.rewritten_faster for t in timings), measured


def _disagreement(
    timer: ModelTimer,
    reference: onnx.ModelProto,
    candidate: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    floats_only: bool = False,
) -> str:
    """How ``candidate``'s outputs differ from ``reference``'s: in shape, floats by more than
    OUTPUT_RTOL of the largest, other types at all (``floats_only``: float outputs of the same
    shape only); "" where they agree."""
    expected = timer.outputs(reference, feeds)
    actual = timer.outputs(candidate, feeds)
    for output, want, got in zip(reference.graph.output, expected, actual):
        if not isinstance(want, np.ndarray) or not isinstance(got, np.ndarray):
            if floats_only:
                continue
            return f"output '{output.name}' is not a tensor in both"
        if floats_only and (want.dtype.kind != "f" or want.shape != got.shape):
            continue
        if want.shape != got.shape:
            return f"output '{output.name}': shape {got.shape}, not {want.shape}"
        if want.dtype.kind != "f":
            if not np.array_equal(want, got):
                return f"output '{output.name}': other values"
            continue
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        error = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
        if not error <= OUTPUT_RTOL * scale + np.finfo(np.float32).tiny:
            return f"output '{output.name}': max |difference| {error:.3g}, largest {scale:.3g}"
    return ""


def _float_disagreement(
    timer: ModelTimer,
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
) -> str:
    """How the rewrite's float outputs differ from the original's beyond float rounding (more
    than OUTPUT_RTOL of the largest), or "" where they agree. Only for models without integer
    products, which ORT computes exactly on every CPU: without VNNI ORT's INT8 products
    saturate where ortsparse's do not, and it is no reference."""
    if any(node.op_type in _INTEGER_PRODUCTS for node in original.graph.node):
        return ""
    return _disagreement(timer, original, rewritten, feeds, floats_only=True)


# Ops that mark a model whose products ORT may run on its integer kernels, which saturate on some
# CPUs (a QDQ model's DequantizeLinear groups fuse into them).
_INTEGER_PRODUCTS = {
    "QLinearMatMul",
    "QLinearConv",
    "MatMulInteger",
    "ConvInteger",
    "DequantizeLinear",
}


def _required_speedups(timings: Mapping[str, Timing], slower: Mapping[str, Decision]) -> list:
    """1 (every node measured faster), then the quartiles of the speedups measured that exclude
    some node more: the least speedup a node must have shown alone to be kept, on each try of
    the whole model."""
    speedups = sorted(timing.speedup for name, timing in timings.items() if name not in slower)
    quartiles = {speedups[len(speedups) * q // 4] for q in (1, 2, 3)} if speedups else set()
    return [1.0, *sorted(quartile for quartile in quartiles if quartile > speedups[0])]


# --- the nodes of each rewrite -------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """One ortsparse node of the rewrite and the part of the original it replaces."""

    label: str
    inputs: tuple[str, ...]  # the values both read, computed by the original
    decisions: tuple[str, ...]  # Decision.node_name of the original MatMul/Gemm/Conv nodes in it
    original_nodes: tuple[onnx.NodeProto, ...]
    rewritten_node: onnx.NodeProto
    outputs: tuple[str, ...]

    def models(
        self,
        original: onnx.ModelProto,
        rewritten: onnx.ModelProto,
        values: Mapping[str, np.ndarray],
    ) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        """The part of the original and the ortsparse node, each as a model of its own."""
        inputs = _part_inputs(self.inputs, values)
        return (
            _model_of(original, self.original_nodes, inputs, self.outputs),
            _model_of(rewritten, [self.rewritten_node], inputs, self.outputs),
        )


def _groups(original: onnx.ModelProto, result: RewriteResult) -> list[_Group]:
    rewritten = result.model
    decided = {decision.node_name for decision in result.decisions if decision.rewritten}
    producers = {output: node for node in original.graph.node for output in node.output}
    order = {id(node): index for index, node in enumerate(original.graph.node)}
    original_constants = {tensor.name for tensor in original.graph.initializer}
    rewritten_constants = {tensor.name for tensor in rewritten.graph.initializer}
    graph_inputs = {value.name for value in original.graph.input}
    groups = []
    for node in rewritten.graph.node:
        if node.domain != DOMAIN:
            continue
        inputs = tuple(
            dict.fromkeys(name for name in node.input if name and name not in rewritten_constants)
        )
        if not all(name in producers or name in graph_inputs for name in inputs):
            continue
        region = _region(producers, original_constants, set(inputs), list(node.output))
        if region is None:
            continue
        names = tuple(display_name(n) for n in region if display_name(n) in decided)
        if names:
            region.sort(key=lambda region_node: order[id(region_node)])
            outputs = tuple(name for name in node.output if name)
            groups.append(
                _Group(node.name or outputs[0], inputs, names, tuple(region), node, outputs)
            )
    return groups


def _part_inputs(
    names: Sequence[str], values: Mapping[str, np.ndarray]
) -> list[onnx.ValueInfoProto]:
    """The inputs ``names`` of a part cut out to be timed alone, typed as ``values`` holds them;
    raises VerificationError for a value of a type numpy lacks."""
    if not all(isinstance(values[name], np.ndarray) for name in names):
        raise VerificationError("it reads a value of a type numpy lacks")
    return [
        onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(values[name].dtype), values[name].shape
        )
        for name in names
    ]


def _region(
    producers: Mapping[str, onnx.NodeProto],
    constants: set[str],
    inputs: set[str],
    outputs: list[str],
) -> list[onnx.NodeProto] | None:
    """The original's nodes that compute ``outputs`` from ``inputs`` and constants; None where
    they need anything else (another graph input, a value from elsewhere)."""
    needed: dict[int, onnx.NodeProto] = {}
    pending = [name for name in outputs if name]
    while pending:
        name = pending.pop()
        if name in inputs or name in constants:
            continue
        node = producers.get(name)
        if node is None:
            return None
        if id(node) not in needed:
            needed[id(node)] = node
            pending += [name for name in node.input if name]
    return list(needed.values())


@dataclass(frozen=True)
class _Prologue:
    """A SparseConv's depthwise prologue as the original computes it: ``nodes`` compute ``x``,
    the input of the original 1x1 Conv, from the SparseConv's X."""

    node: str  # the SparseConv's name
    nodes: tuple[onnx.NodeProto, ...]
    x: str
    decisions: tuple[str, ...]  # Decision.node_name of the original convs it replaced


def _prologue_of(
    original: onnx.ModelProto, group: _Group, fused: Sequence[str]
) -> _Prologue | None:
    """The depthwise prologue of ``group``'s SparseConv, whose decision fused ``fused``."""
    node = group.rewritten_node
    if not any(attribute.name == "depthwise_kernel_shape" for attribute in node.attribute):
        return None
    pointwise = next(n for n in group.original_nodes if display_name(n) in group.decisions)
    producers = {output: n for n in original.graph.node for output in n.output}
    constants = {tensor.name for tensor in original.graph.initializer}
    constants |= {name for name, n in producers.items() if n.op_type == "Constant"}
    # The SparseConv's weights hold the affine it folded, so apart it reads the affine's input.
    x = pointwise.input[0]
    for _ in range(folded_affine_nodes(fused)):
        affine = producers.get(x)
        if affine is None or affine.op_type not in ("Mul", "Add"):
            return None
        computed = [name for name in affine.input if name not in constants]
        if len(computed) != 1:
            return None
        x = computed[0]
    nodes = _region(producers, constants, {node.input[0]}, [x])
    if nodes is None:
        return None
    order = {id(n): index for index, n in enumerate(original.graph.node)}
    nodes.sort(key=lambda n: order[id(n)])
    return _Prologue(node.name, tuple(nodes), x, group.decisions)


def _without_prologues(
    original: onnx.ModelProto, model: onnx.ModelProto, prologues: Mapping[str, _Prologue]
) -> onnx.ModelProto:
    """``model`` with each SparseConv named in ``prologues`` reading its 1x1 Conv's input from
    the original's depthwise nodes again, which come back with their constants."""
    if not prologues:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    nodes, needed = [], set()
    for node in copy.graph.node:
        prologue = prologues.get(node.name) if node.domain == DOMAIN else None
        if prologue is not None and node.input[0] != prologue.x:
            nodes += [_copy_node(n) for n in prologue.nodes]
            needed |= {name for n in prologue.nodes for name in n.input}
            node.input[0] = prologue.x
            kept = [a for a in node.attribute if not a.name.startswith(DepthwisePrologue.PREFIX)]
            del node.attribute[:]
            node.attribute.extend(kept)
        nodes.append(node)
    present = {tensor.name for tensor in copy.graph.initializer}
    present |= {name for node in nodes for name in node.output}
    copy.graph.ClearField("node")
    copy.graph.node.extend([*_constant_nodes(original, needed - present), *nodes])
    copy.graph.initializer.extend(
        tensor
        for tensor in original.graph.initializer
        if tensor.name in needed and tensor.name not in present
    )
    return copy


def _constant_nodes(model: onnx.ModelProto, names: set[str]) -> list[onnx.NodeProto]:
    """The Constant nodes of ``model`` that compute any of ``names``: the weights exporters such
    as paddle2onnx write as nodes, not initializers."""
    return [
        node for node in model.graph.node if node.op_type == "Constant" and node.output[0] in names
    ]


def _copy_node(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def _prologue_separated(decision: Decision) -> Decision:
    fused = [step for step in decision.fused if not step.startswith(FuseDepthwisePrologue.label)]
    return replace(decision, fused=fused)


def _may_gain_on_one_thread(timer: ModelTimer, group: _Group, timing: Timing) -> bool:
    return (
        timer.threads != 1
        and group.rewritten_node.op_type in SINGLE_THREAD_OPS
        and timing.rewritten_ms < SINGLE_THREAD_MAX_MS
    )


def _single_threaded(model: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """``model`` with its ortsparse nodes named in ``names`` running on the calling thread."""
    if not names:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.domain == DOMAIN and node.name in names:
            node.attribute.append(onnx.helper.make_attribute("single_thread", 1))
    return copy


def _model_of(
    model: onnx.ModelProto,
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[str],
) -> onnx.ModelProto:
    """``nodes`` of ``model`` with the constants they read (initializers and Constant nodes), as
    a model of their own."""
    used = {name for node in nodes for name in node.input}
    given = {value.name for value in inputs} | {name for node in nodes for name in node.output}
    graph = onnx.helper.make_graph(
        [*_constant_nodes(model, used - given), *nodes],
        "verify",
        list(inputs),
        [onnx.ValueInfoProto(name=name) for name in outputs],
        [tensor for tensor in model.graph.initializer if tensor.name in used],
    )
    part = onnx.helper.make_model(graph, opset_imports=model.opset_import)
    part.ir_version = model.ir_version
    return part


# --- timing --------------------------------------------------------------------------------------


class ModelTimer:
    """Runs and times models on this CPU, on ``threads`` intra-op threads (0: ORT's default)."""

    def __init__(self, threads: int, library: str):
        self.threads = threads
        self.library = library

    def session(self, model: onnx.ModelProto) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        if any(opset.domain == DOMAIN for opset in model.opset_import):
            options.register_custom_ops_library(self.library)
        try:
            return ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        # ORT's exception classes share no narrower base; protobuf raises ValueError past 2 GB.
        except Exception as error:
            raise VerificationError(_first_line(error)) from error

    def values(
        self, original: onnx.ModelProto, feeds: Mapping[str, np.ndarray], names: set[str]
    ) -> dict[str, np.ndarray]:
        """The values of ``names`` (graph inputs or computed) on ``feeds``."""
        computed = sorted(names - set(feeds))
        probe = onnx.ModelProto()
        probe.CopyFrom(original)
        present = {output.name for output in probe.graph.output}
        probe.graph.output.extend(
            onnx.ValueInfoProto(name=name) for name in computed if name not in present
        )
        session = self.session(probe)
        try:
            results = session.run(None, dict(feeds))
        except Exception as error:  # ORT's exception classes share no narrower base
            raise VerificationError(
                f"the model fails on random inputs: {_first_line(error)}"
            ) from error
        by_name = dict(zip((output.name for output in session.get_outputs()), results))
        return {**{name: by_name[name] for name in computed}, **feeds}

    def outputs(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list:
        """The model's outputs on ``feeds``."""
        try:
            return self.session(model).run(None, dict(feeds))
        except Exception as error:  # ORT's exception classes share no narrower base
            raise VerificationError(_first_line(error)) from error

    def compare(
        self,
        original: onnx.ModelProto,
        rewritten: onnx.ModelProto,
        feeds: Mapping[str, np.ndarray],
        seconds: float,
    ) -> Timing:
        """Each model's median, over alternating rounds, of its mean time per run in a round:
        what it takes in use, with a disturbed round or two left out."""
        sessions = [self.session(original), self.session(rewritten)]
        feeds = dict(feeds)
        try:
            first_run = []
            for session in sessions:
                start = time.perf_counter()
                session.run(None, feeds)
                first_run.append(time.perf_counter() - start)
        except Exception as error:
            raise VerificationError(_first_line(error)) from error
        per_round = seconds / ROUNDS / len(sessions)
        runs = [max(1, int(per_round / max(first, 1e-6))) for first in first_run]
        means: list[list[float]] = [[] for _ in sessions]
        for _ in range(ROUNDS):
            for index, (session, count) in enumerate(zip(sessions, runs)):
                start = time.perf_counter()
                for _ in range(count):
                    session.run(None, feeds)
                means[index].append((time.perf_counter() - start) / count)
        original_s, rewritten_s = (statistics.median(times) for times in means)
        return Timing(original_s * 1e3, rewritten_s * 1e3)


# --- inputs and results --------------------------------------------------------------------------


def _random_feeds(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, ...]]]:
    specs = model_input_specs(model)
    unknown = set(input_shapes or {}) - {spec.name for spec in specs}
    if unknown:
        raise VerificationError(f"no input named {', '.join(sorted(unknown))} in the model")
    shapes = {**default_input_shapes(specs), **(input_shapes or {})}
    shapes = {name: tuple(int(dim) for dim in shape) for name, shape in shapes.items()}
    try:
        arrays = random_inputs(specs, shapes)
    except InputError as error:
        raise VerificationError(str(error)) from error
    return {spec.name: to_feed(spec, array) for spec, array in zip(specs, arrays)}, shapes


def default_input_shapes(
    specs: Sequence[InputSpec], batch_size: int = 1
) -> dict[str, tuple[int, ...]]:
    """The shapes verification feeds where none is given: a symbolic leading dim is the batch,
    every other symbolic dim SYMBOLIC_DIM (a sequence or image size a model meets in use,
    where 1 would time another regime altogether)."""
    return {
        spec.name: tuple(
            dim if isinstance(dim, int) else (batch_size if axis == 0 else SYMBOLIC_DIM)
            for axis, dim in enumerate(spec.shape)
        )
        for spec in specs
    }


def _kept_as_measured(result: RewriteResult, name: str, timing: Timing) -> Decision:
    decision = next(decision for decision in result.decisions if decision.node_name == name)
    return replace(
        decision,
        format="-",
        rewritten=False,
        reason=f"ortsparse {timing.describe()}, not faster on this CPU",
        fused=[],
        measured=timing.describe(),
    )


def _kept_below(result: RewriteResult, name: str, timing: Timing, required: float) -> Decision:
    decision = next(decision for decision in result.decisions if decision.node_name == name)
    return replace(
        decision,
        format="-",
        rewritten=False,
        reason=(
            f"ortsparse {timing.describe()} alone, short of the {required:.2f}x that the whole "
            "model needed from its rewritten nodes on this CPU"
        ),
        fused=[],
        measured=timing.describe(),
    )


def _original_kept(
    original: onnx.ModelProto, result: RewriteResult, reason: str, summary: str = ""
) -> RewriteResult:
    decisions = [
        replace(decision, format="-", rewritten=False, reason=f"{reason}; the original is kept")
        if decision.rewritten
        else decision
        for decision in result.decisions
    ]
    decided_by = (
        f"{result.decided_by}; {summary or 'verified on this CPU'}: {reason}, kept the original"
    )
    model = onnx.ModelProto()
    model.CopyFrom(original)
    return RewriteResult(model, decisions, decided_by)


def _format_shapes(shapes: Mapping[str, Sequence[int]]) -> str:
    return ", ".join(f"{name}=[{','.join(map(str, shape))}]" for name, shape in shapes.items())


def _threads(threads: int) -> str:
    return f"{threads} thread(s)" if threads else "ORT's default threads"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
