"""The QDQ form of a quantized MatMul, as onnxruntime.quantization writes it:

    QuantizeLinear(MatMul(DequantizeLinear(x_q), DequantizeLinear(constant int8 W)))
    ->  SparseQGemm(x_q, packed W)

ORT itself runs this pattern as QLinearMatMul, whose integer arithmetic SparseQGemm reproduces.
Where the MatMul's output goes on in float instead (anything but one QuantizeLinear reads it: the
graph dequantizes the product), SparseQGemm writes that float output: the exact int32 sums times
x_scale * w_scale.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import dequantized_by, qdq_product
from ortsparse.rewriter.quantized_matmul import convert_quantized_matmul


class QdqMatMulToSparseQGemm(ConversionRule):
    op_type = "MatMul"

    def applies_to(self, graph: Graph, node: onnx.NodeProto) -> bool:
        """A MatMul whose weight comes out of a DequantizeLinear is a quantized one: the float
        rule could not use its weight anyway."""
        return dequantized_by(graph, node.input[1]) is not None

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        qdq = qdq_product(graph, node, output_axis=1)
        if isinstance(qdq, Refusal):
            return kept(node, qdq)
        return convert_quantized_matmul(
            graph,
            node,
            qdq.replaced(graph, node),
            policy,
            qdq.x_dequantize.input[0],
            qdq.x,
            graph.constant(qdq.w_dequantize.input[0]),
            qdq.w,
            qdq.y,
            qdq.output(node),
        )
