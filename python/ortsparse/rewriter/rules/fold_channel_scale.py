"""SparseGemm/SparseConv -> Mul(constant that broadcasts along the channels)  ->  same op with the
factors folded into its packed weight and its bias.

    y * s = (X W + b) * s,   W'[:, n] = W[:, n] * s[n],   b'[n] = b[n] * s[n]

Exporters that fold a BatchNormalization themselves write it as this Mul and an Add of the shift
(PaddlePaddle's PP-OCR models); FuseBiasAdd then takes the Add. The factors broadcast as a bias
does (FuseBiasAdd's shapes), either operand order. Only while the epilogue is affine in the
product: no activation or residual fused yet. The packed values are scaled where they are stored,
so the weight keeps its sparsity pattern and the cost model's verdict stands.
"""

from __future__ import annotations

import numpy as np

from ortsparse.rewriter.fusion import (
    EpilogueRule,
    Fusion,
    channel_constant,
    packed_weight,
    sole_consumer_of_type,
)
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.packing import scale_output_channels
from ortsparse.rewriter.sparse_op import NO_ACTIVATION, SparseOp


class FoldChannelScale(EpilogueRule):
    label = "Mul"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if op.activation.name != NO_ACTIVATION or op.residual or not op.channels_on_axis():
            return None
        mul = sole_consumer_of_type(graph, op, "Mul")
        shape = graph.shape(op.output)
        if mul is None or shape is None:
            return None
        factors = channel_constant(graph, mul, op.output, op.n, op.CHANNEL_AXIS, len(shape))
        if factors is None:
            return None
        scaled = scale_output_channels(packed_weight(graph, op), factors.astype(np.float64)).values
        replacements = {
            "weight_values": graph.add_initializer(f"{op.name}.weight_values", scaled),
            "output": mul.output[0],
        }
        if op.bias:
            bias = graph.constant(op.bias).astype(np.float64) * factors
            replacements["bias"] = graph.add_initializer(f"{op.name}.bias", bias.astype(np.float32))
        return Fusion((mul,), op.replace(**replacements))
