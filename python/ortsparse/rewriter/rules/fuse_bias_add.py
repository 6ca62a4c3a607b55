"""SparseGemm/SparseConv -> Add(constant that broadcasts along the channels)  ->  same op(bias).

The channels are SparseGemm's last axis ([N], [1, N], one element) and SparseConv's axis 1
([N, 1, 1], [1, N, 1, 1], one element); either operand order. Only before an activation: the
epilogue adds the bias to the product, then activates. A bias the op already has (Gemm's C,
Conv's B, a folded BatchNormalization) is summed with the new one.
"""

from __future__ import annotations

import numpy as np

from ortsparse.rewriter.fusion import (
    EpilogueRule,
    Fusion,
    channel_constant,
    sole_consumer_of_type,
)
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_op import NO_ACTIVATION, SparseOp


class FuseBiasAdd(EpilogueRule):
    label = "Add"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if op.activation.name != NO_ACTIVATION or not op.channels_on_axis():
            return None
        add = sole_consumer_of_type(graph, op, "Add")
        shape = graph.shape(op.output)
        if add is None or shape is None:
            return None
        bias = channel_constant(graph, add, op.output, op.n, op.CHANNEL_AXIS, len(shape))
        if bias is None:
            return None
        if op.bias:
            bias = bias + graph.constant(op.bias)
        bias_name = graph.add_initializer(f"{op.name}.bias", bias.astype(np.float32))
        return Fusion((add,), op.replace(bias=bias_name, output=add.output[0]))
