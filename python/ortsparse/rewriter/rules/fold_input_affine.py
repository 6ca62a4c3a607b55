"""x -> Mul(constant a) -> Add(constant b) -> SparseConv without padding  ->  SparseConv reading x,
with a folded into its packed weight and W.b into its bias:

    W (a x + b) = (W a) x + W b
    W'[k, n] = W[k, n] a[c(k)],   b'[n] = b[n] + sum_k W[k, n] b[c(k)]

with c(k) the input channel of row k (k = (c * kH + i) * kW + j). Either node may be missing; a
and b run along the channels (shape [C, 1, 1], [1, C, 1, 1] or one element). Exporters write a
learnable affine after an activation this way (PP-OCRv4's PP-LCNetV3 blocks: scale and bias
after every hard-swish), which otherwise stands between a depthwise Conv's activation and the 1x1
that FuseDepthwisePrologue would take it into. Without padding every tap reads an affine value;
with padding the taps outside X would read b where x reads zero, so padded convolutions keep the
nodes. The SparseConv must read X in one part and alone, with no prologue.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from ortsparse.rewriter.fusion import GraphRule, channel_constant, packed_weight
from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.packing import BLOCK_SIZE, unpack
from ortsparse.rewriter.sparse_conv import SparseConv, sparse_conv_of


class FoldInputAffine(GraphRule):
    label = "affine before it"

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        fused = []
        for node in list(graph.nodes):
            op = sparse_conv_of(node, ops)
            if op is None:
                continue
            if any(op.pads) or op.x_parts or op.depthwise is not None or op.pointwise is not None:
                continue
            found = _affine_before(graph, op, node)
            if found is None:
                continue
            absorbed, x, scale, shift = found
            graph.replace([*absorbed, node], [_folded(graph, op, x, scale, shift).to_node()])
            steps = ", ".join(n.op_type for n in absorbed)
            fused.append((op.name, f"{self.label} ({steps})"))
        return fused


def folded_affine_nodes(fused: Sequence[str]) -> int:
    """How many nodes FoldInputAffine folded into a SparseConv, from its Decision.fused steps."""
    prefix = f"{FoldInputAffine.label} ("
    for step in fused:
        if step.startswith(prefix):
            return len(step[len(prefix) : -1].split(", "))
    return 0


def _affine_before(
    graph: Graph, op: SparseConv, node: onnx.NodeProto
) -> tuple[list[onnx.NodeProto], str, np.ndarray, np.ndarray] | None:
    """The Mul and Add (in graph order) that compute the op's X from a tensor x, that x, and the
    per-channel scale and shift they apply; None where there are neither."""
    absorbed: list[onnx.NodeProto] = []
    scale = np.ones(op.c, np.float64)
    shift = np.zeros(op.c, np.float64)
    tensor, reader = op.x, node
    for op_type in ("Add", "Mul"):
        producer = graph.producer(tensor)
        if (
            producer is None
            or producer.op_type != op_type
            or not is_default_domain(producer)
            or graph.sole_consumer(tensor) is not reader
        ):
            continue
        operands = [name for name in producer.input if graph.constant(name) is None]
        # x must be X's shape already: a constant [C, 1, 1] would broadcast x of one channel.
        shape = graph.shape(tensor)
        if len(operands) != 1 or shape is None or graph.shape(operands[0]) != shape:
            continue
        vector = channel_constant(graph, producer, operands[0], op.c, op.CHANNEL_AXIS, rank=4)
        if vector is None:
            continue
        vector = vector.astype(np.float64)
        # Backwards from X: an Add found first applies after the Mul, X = a x + b.
        if op_type == "Add":
            shift = vector
        else:
            scale = vector
        absorbed.insert(0, producer)
        tensor, reader = operands[0], producer
    if not absorbed:
        return None
    return absorbed, tensor, scale, shift


def _folded(
    graph: Graph, op: SparseConv, x: str, scale: np.ndarray, shift: np.ndarray
) -> SparseConv:
    packed = packed_weight(graph, op)
    taps = op.k // op.c
    row_scale = np.repeat(scale, taps)  # row k = (c * kH + i) * kW + j reads channel c
    block_size = BLOCK_SIZE[op.format]
    values = packed.values.reshape(-1, block_size) * row_scale[packed.input_indices][:, None]
    bias = graph.constant(op.bias).astype(np.float64) if op.bias else np.zeros(op.n)
    bias = bias + np.repeat(shift, taps) @ unpack(packed).astype(np.float64)
    return op.replace(
        x=x,
        weight_values=graph.add_initializer(
            f"{op.name}.weight_values", values.reshape(-1).astype(np.float32)
        ),
        bias=graph.add_initializer(f"{op.name}.bias", bias.astype(np.float32)),
    )
