"""The QDQ form of a quantized Conv, as onnxruntime.quantization writes it:

    QuantizeLinear(Conv(DequantizeLinear(x_q), DequantizeLinear(constant int8 W),
                        DequantizeLinear(constant int32 B)))
    ->  SparseQConv(x_q, packed W, B)

ORT itself runs this pattern as QLinearConv, with B's integers as they are: SparseQConv does the
same, so the bias's scale must be x_scale * w_scale (what the quantizer writes), or the node stays.

Where the Conv's output goes on in float instead (anything but one QuantizeLinear reads it: the
graph dequantizes the convolution), SparseQConv writes that float output itself: the exact int32
sums times x_scale * w_scale, plus the bias as DequantizeLinear gives it (or a float32 B).
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import dequantized_by, qdq_product
from ortsparse.rewriter.quantized_conv import convert_quantized_conv


class QdqConvToSparseQConv(ConversionRule):
    op_type = "Conv"

    def applies_to(self, graph: Graph, node: onnx.NodeProto) -> bool:
        """A Conv whose weight comes out of a DequantizeLinear is a quantized one: the float rule
        could not use its weight anyway."""
        return dequantized_by(graph, node.input[1]) is not None

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        qdq = qdq_product(graph, node, output_axis=0, weight_rank=4)
        if isinstance(qdq, Refusal):
            return kept(node, qdq)
        b = node.input[2] if len(node.input) > 2 else ""
        bias = qdq.bias(graph, b, "QLinearConv")
        if isinstance(bias, Refusal):
            return kept(node, bias)
        return convert_quantized_conv(
            graph,
            node,
            qdq.replaced(graph, node, bias),
            policy,
            qdq.x_dequantize.input[0],
            qdq.x,
            graph.constant(qdq.w_dequantize.input[0]),
            qdq.w,
            bias,
            qdq.y,
            qdq.output(node),
        )
