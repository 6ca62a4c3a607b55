"""The rewrite pipeline: validate, convert MatMul/Gemm/Conv nodes, fuse epilogues, clean up.

1. The model is checked (onnx.checker, strict shape inference); a malformed one is a RewriteError.
2. Conversion rules visit every MatMul, Gemm, Conv, QLinearMatMul, QLinearConv, MatMulInteger,
   ConvInteger and com.microsoft Attention node of the top-level graph, in graph order, and each
   gets a Decision, rewritten or not (a MatMul, Gemm or Conv whose weight comes out of a
   DequantizeLinear goes to its INT8 rule); nodes inside control-flow subgraphs are reported as
   kept.
3. Epilogue rules fold the nodes after each new SparseGemm/SparseConv into it until none applies;
   a quantized residual Add after a new SparseQConv folds into it the same way. Then a Sigmoid or
   Relu that only data movement (Concat, Reshape, Transpose, ...) separates from such ops folds
   into each of them, a channel Concat that only new SparseConv nodes read as X gives them its
   inputs to read in place, pairs of new SparseConv nodes that read the same X the same way
   merge into one with two outputs, an affine before an unpadded SparseConv folds into it, and a
   1x1 SparseConv takes the depthwise Conv (with its BatchNormalization and activation) that
   computes its X as its prologue. Last, a hard-swish written in four nodes that no op took
   becomes x * HardSigmoid(x).
4. Initializers and Constant nodes left unused are removed; the ortsparse opset is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import onnx

from ortsparse.rewriter.conversion import Conversion, display_name, kept
from ortsparse.rewriter.cost_data import CostModels
from ortsparse.rewriter.cost_data import cost_models as cost_models_for_this_cpu
from ortsparse.rewriter.decisions import Decision, RewriteResult
from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.fusion import apply_fusion
from ortsparse.rewriter.graph import Graph, subgraphs
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.rules import (
    CONVERSION_RULES,
    EPILOGUE_RULES,
    GRAPH_RULES,
    QUANTIZED_EPILOGUE_RULES,
)
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import DOMAIN, OPSET_VERSION

Progress = Callable[[str], None]

_PROTOBUF_LIMIT_BYTES = 2**31

_SPARSE_OP_CLASSES = {op_class.OP_TYPE: op_class for op_class in (SparseGemm, SparseConv)}


def rewrite_model(
    model: onnx.ModelProto,
    *,
    min_sparsity: float | None = None,
    progress: Progress | None = None,
    keep: Mapping[str, Decision] | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    convert: Collection[str] = (),
) -> RewriteResult:
    """Rewrites eligible MatMul/Gemm/Conv nodes of ``model`` (left unchanged) into SparseGemm and
    SparseConv nodes.

    ``min_sparsity`` replaces the cost model's verdict by a threshold on each weight's fraction
    of zeros; ``keep``, ``input_shapes`` and ``convert`` as rewrite_owned_model takes them.
    Raises RewriteError for a malformed model.
    """
    owned = onnx.ModelProto()
    owned.CopyFrom(model)
    return rewrite_owned_model(
        owned,
        min_sparsity=min_sparsity,
        progress=progress,
        keep=keep,
        input_shapes=input_shapes,
        convert=convert,
    )


def rewrite_owned_model(
    model: onnx.ModelProto,
    *,
    min_sparsity: float | None = None,
    progress: Progress | None = None,
    checked: bool = False,
    keep: Mapping[str, Decision] | None = None,
    cost_models: CostModels | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    convert: Collection[str] = (),
) -> RewriteResult:
    """rewrite_model, editing ``model`` in place; ``checked`` when the checker already passed it.
    ``keep``: nodes (by Decision.node_name) to leave as they are, with the decision to report
    for each (verification keeps those measured slower than ORT). ``convert``: nodes to rewrite
    where the cost model would keep them (verification times them with what they fuse).
    ``cost_models``: those to judge with instead of this CPU's (cost_data.cost_models_of another
    CPU's measurement).
    ``input_shapes``: the sizes the model will run at, by input name, for the cost model to
    judge with where the model's dims are symbolic (the rewrite keeps them symbolic)."""
    report = progress or (lambda message: None)
    if min_sparsity is not None and not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be within [0, 1], got {min_sparsity}")
    if not checked:
        _check(model)
    report("inferring shapes")
    graph = Graph(model, input_shapes)
    models = cost_models or cost_models_for_this_cpu()
    if min_sparsity is None:
        report(models.source)
    policy = SparsityPolicy(models.gemm, models.conv, min_sparsity)

    conversions = _convert(graph, policy, report, keep or {}, set(convert))
    rewritten = [conversion for conversion in conversions if conversion.sparse_node]
    # SparseQGemm's and SparseQConv's requantization already hold what QDQ graphs express after
    # the product; a residual Add after it is SparseQConv's alone.
    with_epilogue = [
        conversion
        for conversion in rewritten
        if graph.node_named(conversion.sparse_node).op_type in _SPARSE_OP_CLASSES
    ]
    report(f"fusing epilogues of {len(with_epilogue)} SparseGemm/SparseConv node(s)")
    for conversion in with_epilogue:
        _fuse_epilogue(graph, conversion)
    for conversion in rewritten:
        _fuse_quantized_epilogue(graph, conversion)
    by_node = {conversion.sparse_node: conversion for conversion in with_epilogue}
    for rule in GRAPH_RULES:
        for node_name, fused in rule.apply(graph, set(by_node)):
            by_node[node_name].decision.fused.append(fused)
    graph.commit()
    if rewritten:
        _import_ortsparse_opset(model)
    decided_by = models.source if min_sparsity is None else f"min-sparsity {min_sparsity}"
    return RewriteResult(model, [conversion.decision for conversion in conversions], decided_by)


def _check(model: onnx.ModelProto) -> None:
    """onnx.checker on ``model``; a model over protobuf's limit only exists loaded from a file,
    which rewrite_file checks through its path instead."""
    if estimated_size_bytes(model) >= _PROTOBUF_LIMIT_BYTES:
        return
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise RewriteError(f"the model is malformed: {error}") from error


def estimated_size_bytes(model: onnx.ModelProto) -> int:
    """About the serialized size of ``model``: its initializers and nodes, which hold all weights.
    (ByteSize() itself fails past protobuf's 2 GB limit.)"""
    graph = model.graph
    return sum(tensor.ByteSize() for tensor in graph.initializer) + sum(
        node.ByteSize() for node in graph.node
    )


def _convert(
    graph: Graph,
    policy: SparsityPolicy,
    report: Progress,
    keep: Mapping[str, Decision],
    convert: set[str],
) -> list[Conversion]:
    converting = policy.converting_all()
    candidates = [node for node in graph.nodes if _convertible(node)]
    kinds = "/".join(sorted({node.op_type for node in candidates})) or "MatMul/Gemm/Conv"
    report(f"analysing {len(candidates)} {kinds} node(s)")
    conversions = []
    for index, node in enumerate(candidates, 1):
        if display_name(node) in keep:
            conversion = Conversion(keep[display_name(node)])
        else:
            rule = next(
                rule
                for rule in CONVERSION_RULES
                if rule.converts(node) and rule.applies_to(graph, node)
            )
            conversion = rule.convert(
                graph, node, converting if display_name(node) in convert else policy
            )
        decision = conversion.decision
        outcome = (
            f"rewritten ({decision.format})" if decision.rewritten else f"kept: {decision.reason}"
        )
        report(f"[{index}/{len(candidates)}] {decision.node_name}: {outcome}")
        conversions.append(conversion)
    conversions += [
        kept(node, "inside a control-flow subgraph, which the rewriter leaves as it is")
        for node in _subgraph_nodes(graph.nodes)
        if _convertible(node)
    ]
    return conversions


def _convertible(node: onnx.NodeProto) -> bool:
    return any(rule.converts(node) for rule in CONVERSION_RULES)


def _subgraph_nodes(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    found = []
    for node in nodes:
        for subgraph in subgraphs(node):
            found += [*subgraph.node, *_subgraph_nodes(subgraph.node)]
    return found


def _fuse_epilogue(graph: Graph, conversion: Conversion) -> None:
    """Applies the first epilogue rule that matches the new sparse op, again and again."""
    while True:
        node = graph.node_named(conversion.sparse_node)
        sparse_op = _SPARSE_OP_CLASSES[node.op_type].from_node(node)
        for rule in EPILOGUE_RULES:
            fusion = rule.match(graph, sparse_op)
            if fusion is not None:
                apply_fusion(graph, node, fusion)
                conversion.decision.fused.append(rule.label)
                break
        else:
            return


def _fuse_quantized_epilogue(graph: Graph, conversion: Conversion) -> None:
    """Applies the first quantized epilogue rule that matches the new INT8 op, again and again."""
    while True:
        node = graph.node_named(conversion.sparse_node)
        for rule in QUANTIZED_EPILOGUE_RULES:
            fusion = rule.match(graph, node)
            if fusion is not None:
                graph.replace([node, *fusion.absorbed], [fusion.fused])
                conversion.decision.fused.append(rule.label)
                break
        else:
            return


def _import_ortsparse_opset(model: onnx.ModelProto) -> None:
    if all(opset.domain != DOMAIN for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, OPSET_VERSION))
