"""Conv(X, Wd, Bd; group = C) -> [BatchNormalization] -> [activation] -> SparseConv 1x1  ->
SparseConv with a depthwise prologue: the op computes the depthwise output itself, a band of rows
at a time, into the planes its product reads (docs/ops.md).

The depthwise-separable block (MobileNet, PP-LCNet, the OCR models) then never leaves NCHW: ORT
runs a depthwise Conv in NCHWc, reordering X before it and its output after it, between our NCHW
ops. The product must be 1x1 with stride 1 and no padding, and read X in one part; the depthwise
Conv has one filter per channel ([C, 1, kH, kW], constant), a constant bias or none, and every
tensor between it and the SparseConv has no other reader. The BatchNormalization, or the Mul by
its scale and the Add of its shift that some exporters write instead, is folded into the
depthwise weight and bias; the activation is any the SparseConv's epilogue takes, found by
the epilogue rules' own matchers. Verification times the fused op against all the nodes it
replaced.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import onnx

from ortsparse.rewriter.conv_window import conv_window
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.fusion import (
    ActivationRule,
    GraphRule,
    channel_constant,
    sole_default_consumer,
)
from ortsparse.rewriter.graph import Graph, attribute_values, is_default_domain
from ortsparse.rewriter.rules.fold_batch_norm import batch_norm_factors
from ortsparse.rewriter.sparse_conv import DepthwisePrologue, SparseConv, sparse_conv_of
from ortsparse.rewriter.sparse_op import Activation

# How far back from the SparseConv's X the depthwise Conv may be: a BatchNormalization (or a Mul
# and an Add) and an activation of a few nodes (x * HardSigmoid(x) is two, x * Clip(x + 3, 0, 6)
# / 6 four).
_MAX_NODES_BETWEEN = 6


class FuseDepthwisePrologue(GraphRule):
    label = "depthwise Conv before it"

    def __init__(self, activation_rules: Sequence[ActivationRule]):
        self.activation_rules = tuple(activation_rules)

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        fused = []
        for node in list(graph.nodes):
            op = sparse_conv_of(node, ops)
            if op is None or not _pointwise(op):
                continue
            found = self._depthwise_before(graph, op, node)
            if found is None:
                continue
            absorbed, conv, prologue = found
            graph.replace(
                [*absorbed, node], [op.replace(x=conv.input[0], depthwise=prologue).to_node()]
            )
            kernel = "x".join(str(size) for size in prologue.kernel_shape)
            steps = [f"{kernel} Conv {conv.name or conv.output[0]}"]
            steps += [n.op_type for n in absorbed if n is not conv]
            fused.append((op.name, f"{self.label} ({', '.join(steps)})"))
        return fused

    def _depthwise_before(
        self, graph: Graph, op: SparseConv, node: onnx.NodeProto
    ) -> tuple[list[onnx.NodeProto], onnx.NodeProto, DepthwisePrologue] | None:
        """The nodes from a depthwise Conv to the op's X (the Conv first), the Conv, and the
        prologue they make; None when no such chain computes X, or something else reads a
        tensor of it (``node`` is the op's)."""
        for conv in _convs_upstream(graph, op.x):
            prologue = _depthwise_prologue(graph, conv, op.c)
            if prologue is None:
                continue
            absorbed = [conv]
            tensor = conv.output[0]
            batch_norm = sole_default_consumer(graph, tensor, "BatchNormalization")
            if batch_norm is not None and tensor != op.x:
                folded = _fold_batch_norm(graph, batch_norm, tensor, prologue)
                if folded is not None:
                    prologue = folded
                    absorbed.append(batch_norm)
                    tensor = batch_norm.output[0]
            # A normalization its exporter folded into a Mul by the scale and an Add of the shift.
            for op_type in ("Mul", "Add"):
                affine = sole_default_consumer(graph, tensor, op_type)
                if affine is None or tensor == op.x:
                    continue
                folded = _fold_channel_constant(graph, affine, tensor, op, prologue)
                if folded is not None:
                    prologue = folded
                    absorbed.append(affine)
                    tensor = affine.output[0]
            if tensor != op.x:
                activation = self._activation_of(graph, op.replace(output=tensor))
                if activation is None:
                    continue
                nodes, prologue_activation = activation
                absorbed += nodes
                tensor = nodes[-1].output[0]
                prologue = dataclasses.replace(prologue, activation=prologue_activation)
            # x * HardSigmoid(x) reads the depthwise output twice: readers inside are fine.
            inside = [*absorbed, node]
            if tensor != op.x or not all(
                graph.used_only_by(output, inside) for n in absorbed for output in n.output
            ):
                continue
            return absorbed, conv, prologue
        return None

    def _activation_of(
        self, graph: Graph, stand_in: SparseConv
    ) -> tuple[list[onnx.NodeProto], Activation] | None:
        """The activation of ``stand_in``'s output (the depthwise output) that one of the epilogue
        rules finds, when the op's output stage computes it."""
        for rule in self.activation_rules:
            found = rule.find_activation(graph, stand_in)
            if found is not None and found[1].name in SparseConv.ACTIVATIONS:
                return list(found[0]), found[1]
        return None


def _pointwise(op: SparseConv) -> bool:
    return (
        op.kernel_shape == (1, 1)
        and op.strides == (1, 1)
        and op.pads == (0, 0, 0, 0)
        and not op.x_parts
        and op.depthwise is None
    )


def _convs_upstream(graph: Graph, tensor: str) -> list[onnx.NodeProto]:
    """The Conv nodes within _MAX_NODES_BETWEEN producers of ``tensor``, nearest first."""
    found, frontier, seen = [], [tensor], set()
    for _ in range(_MAX_NODES_BETWEEN):
        producers = []
        for name in frontier:
            node = graph.producer(name)
            if node is None or id(node) in seen or not is_default_domain(node):
                continue
            seen.add(id(node))
            producers.append(node)
        found += [node for node in producers if node.op_type == "Conv"]
        frontier = [name for node in producers if node.op_type != "Conv" for name in node.input]
    return found


def _depthwise_prologue(
    graph: Graph, conv: onnx.NodeProto, channels: int
) -> DepthwisePrologue | None:
    """``conv`` as a prologue for a product of ``channels`` input channels: one filter per channel,
    constant float weight and bias, explicit or resolvable pads; else None."""
    attributes = attribute_values(conv)
    weight = graph.constant(conv.input[1])
    if (
        weight is None
        or weight.dtype != np.float32
        or weight.shape[:2] != (channels, 1)
        or weight.ndim != 4
        or attributes.get("group", 1) != channels
        or graph.elem_type(conv.input[0]) != onnx.TensorProto.FLOAT
    ):
        return None
    bias = np.zeros(channels, np.float32)
    if len(conv.input) > 2 and conv.input[2]:
        bias = graph.constant(conv.input[2])
        if bias is None or bias.shape != (channels,):
            return None
    x_shape = graph.shape(conv.input[0])
    if x_shape is None or len(x_shape) != 4:
        return None
    window = conv_window(attributes, x_shape[2:], list(weight.shape[2:]))
    if isinstance(window, Refusal):
        return None
    return DepthwisePrologue(
        weight=weight,
        bias=bias,
        strides=window.strides,
        dilations=window.dilations,
        pads=window.pads,
    )


def _fold_batch_norm(
    graph: Graph, batch_norm: onnx.NodeProto, tensor: str, prologue: DepthwisePrologue
) -> DepthwisePrologue | None:
    found = batch_norm_factors(graph, batch_norm, tensor, len(prologue.bias))
    if found is None:
        return None
    factors, mean, shift = found
    weight = prologue.weight * factors.reshape(-1, 1, 1, 1)
    bias = (prologue.bias - mean) * factors + shift
    return dataclasses.replace(
        prologue, weight=weight.astype(np.float32), bias=bias.astype(np.float32)
    )


def _fold_channel_constant(
    graph: Graph,
    affine: onnx.NodeProto,
    tensor: str,
    op: SparseConv,
    prologue: DepthwisePrologue,
) -> DepthwisePrologue | None:
    """``prologue`` followed by ``affine``, a Mul or an Add of ``tensor`` and a constant that
    broadcasts along its channels (as a bias does); None for any other operand."""
    vector = channel_constant(graph, affine, tensor, len(prologue.bias), op.CHANNEL_AXIS, rank=4)
    if vector is None:
        return None
    if affine.op_type == "Add":
        return dataclasses.replace(prologue, bias=(prologue.bias + vector).astype(np.float32))
    return dataclasses.replace(
        prologue,
        weight=(prologue.weight * vector.reshape(-1, 1, 1, 1)).astype(np.float32),
        bias=(prologue.bias * vector).astype(np.float32),
    )
