"""SparseConv 1x1 (P) -> SparseConv (C), P's output read by C alone  ->  C with a pointwise
prologue: the op computes P's output itself, band by band, into the planes its product reads
(docs/ops.md), so that the two layers go through the caches a band at a time (a tensor column of
two layers: ResNet's bottleneck 1x1 -> 3x3, YOLO's 1x1 -> 3x3 and 1x1 -> 1x1 chains).

P must be a plain 1x1 of stride 1 without padding, residual, output affine, prologue, split or
channel groups,
with constant weights and bias; C reads P's output as its whole X (no parts, no depthwise
prologue) and writes one NCHW output (no split, no channel groups). Whether the fused op beats the two nodes depends on the CPU and the layers (the halo
rows a band of a 3x3 recomputes, how far the activations outgrow its caches), so the pipeline
does not apply this rule: verification does, node by node where the fused op is measured faster
than the two (ortsparse.verification).
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.fusion import GraphRule
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_conv import PointwisePrologue, SparseConv, sparse_conv_of
from ortsparse.rewriter.sparse_op import DOMAIN


class FusePointwisePrologue(GraphRule):
    label = "sparse 1x1 SparseConv before it"

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        """Fuses each such pair whose consumer is named in ``ops``; returns (consumer's name,
        what it fused) for each."""
        fused = []
        for node in list(graph.nodes):
            consumer = _consumer(node, ops)
            if consumer is None:
                continue
            found = _prologue_for(graph, consumer)
            if found is None:
                continue
            producer_node, producer, prologue = found
            graph.replace(
                [producer_node, node],
                [consumer.replace(x=producer.x, pointwise=prologue).to_node()],
            )
            fused.append((consumer.name, f"{self.label} ({producer.name})"))
        return fused


def _consumer(node: onnx.NodeProto, ops: set[str]) -> SparseConv | None:
    op = sparse_conv_of(node, ops)
    if op is None or op.x_parts or op.output_split or op.output_channel_groups:
        return None
    return op if op.depthwise is None and op.pointwise is None else None


def _prologue_for(
    graph: Graph, consumer: SparseConv
) -> tuple[onnx.NodeProto, SparseConv, PointwisePrologue] | None:
    """The node computing ``consumer``'s X, its op and the prologue it makes; None unless it is
    a plain sparse 1x1 SparseConv whose output only ``consumer`` reads."""
    node = graph.producer(consumer.x)
    if node is None or node.domain != DOMAIN or node.op_type != SparseConv.OP_TYPE:
        return None
    op = SparseConv.from_node(node)
    plain = (
        op.kernel_shape == (1, 1)
        and op.strides == (1, 1)
        and op.pads == (0, 0, 0, 0)
        and not (op.residual or op.x_parts or op.output_split or op.output_channel_groups)
        and op.depthwise is None
        and op.pointwise is None
        and op.output_affine is None
        and op.n == consumer.c
    )
    if not plain or graph.sole_consumer(op.output) is None:
        return None
    weights = [graph.constant(name) for name in (op.weight_group_offsets, op.weight_input_indices)]
    values = graph.constant(op.weight_values)
    bias = graph.constant(op.bias) if op.bias else np.zeros(op.n, np.float32)
    if values is None or any(w is None for w in weights) or bias is None:
        return None
    prologue = PointwisePrologue(
        k=op.k,
        n=op.n,
        format=op.format,
        values=values,
        group_offsets=weights[0],
        input_indices=weights[1],
        bias=bias.reshape(-1),
        activation=op.activation,
    )
    return node, op, prologue


def fuse_pointwise_prologues(
    model: onnx.ModelProto, consumers: set[str]
) -> tuple[onnx.ModelProto, list[tuple[str, str]]]:
    """A copy of ``model`` (a rewrite) with the rule applied to the SparseConv nodes named in
    ``consumers``, and what it fused."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = Graph(copy)
    fused = FusePointwisePrologue().apply(graph, consumers)
    graph.commit()
    return copy, fused
