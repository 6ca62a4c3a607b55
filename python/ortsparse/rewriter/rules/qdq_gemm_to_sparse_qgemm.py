"""The QDQ form of a quantized Gemm, as onnxruntime.quantization writes a MatMul + bias Add that
its pre-processing fused into a Gemm:

    QuantizeLinear(Gemm(DequantizeLinear(x_q), DequantizeLinear(constant int8 W)
                        [, DequantizeLinear(constant int32 bias)]))
    ->  SparseQGemm(x_q, packed W[, bias])

ORT itself runs this pattern as QGemm: the int32 bias added to the exact int32 product, then the
requantization SparseQGemm reproduces. Where the Gemm's output goes on in float instead (anything
but one QuantizeLinear reads it), SparseQGemm writes that float output: the exact int32 sums times
x_scale * w_scale, plus the bias as DequantizeLinear gives it (or a float32 C). A weight stored
[N, K] (transB=1) is packed transposed. alpha, transA and a beta other than 1 on a bias stay with
ORT.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import dequantized_by, qdq_product
from ortsparse.rewriter.quantized_matmul import convert_quantized_matmul


class QdqGemmToSparseQGemm(ConversionRule):
    op_type = "Gemm"

    def applies_to(self, graph: Graph, node: onnx.NodeProto) -> bool:
        """A Gemm whose B comes out of a DequantizeLinear is a quantized one: the float rule could
        not use its weight anyway."""
        return dequantized_by(graph, node.input[1]) is not None

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        attributes = attribute_values(node)
        if attributes.get("transA", 0):
            return kept(node, "transA=1: SparseQGemm does not transpose the activation")
        if attributes.get("alpha", 1.0) != 1.0:
            return kept(node, "alpha is not 1")
        trans_b = bool(attributes.get("transB", 0))
        qdq = qdq_product(graph, node, output_axis=0 if trans_b else 1)
        if isinstance(qdq, Refusal):
            return kept(node, qdq)

        c = node.input[2] if len(node.input) > 2 else ""
        if c and attributes.get("beta", 1.0) != 1.0:
            return kept(node, "beta is not 1")
        bias = qdq.bias(graph, c, "QGemm")
        if isinstance(bias, Refusal):
            return kept(node, bias)

        weight = graph.constant(qdq.w_dequantize.input[0])
        return convert_quantized_matmul(
            graph,
            node,
            qdq.replaced(graph, node, bias),
            policy,
            qdq.x_dequantize.input[0],
            qdq.x,
            weight.T if trans_b and weight is not None else weight,
            qdq.w,
            qdq.y,
            qdq.output(node),
            bias,
        )
