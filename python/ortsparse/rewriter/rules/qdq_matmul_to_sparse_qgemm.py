"""The QDQ form of a quantized MatMul, as onnxruntime.quantization writes it:

    QuantizeLinear(MatMul(DequantizeLinear(x_q), DequantizeLinear(constant int8 W)))
    ->  SparseQGemm(x_q, packed W)

ORT itself runs this pattern as QLinearMatMul, whose integer arithmetic SparseQGemm reproduces.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.quantization import constant_quantization, dequantize_axis
from ortsparse.rewriter.quantized_matmul import convert_quantized_matmul


def _is(node: onnx.NodeProto | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


class QdqMatMulToSparseQGemm(ConversionRule):
    op_type = "MatMul"

    def applies_to(self, graph: Graph, node: onnx.NodeProto) -> bool:
        """A MatMul whose weight comes out of a DequantizeLinear is a quantized one: the float
        rule could not use its weight anyway."""
        return _is(graph.producer(node.input[1]), "DequantizeLinear")

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        x_dq = graph.producer(node.input[0])
        w_dq = graph.producer(node.input[1])
        quantize = graph.sole_consumer(node.output[0])
        if not _is(x_dq, "DequantizeLinear"):
            return kept(node, "the activation does not come from a DequantizeLinear")
        if not _is(quantize, "QuantizeLinear"):
            return kept(node, "the product is not quantized by one QuantizeLinear alone")
        if dequantize_axis(w_dq) not in (1, -1):
            return kept(node, "the weight is quantized along K, not per output column")
        operands = {
            "activation": constant_quantization(graph, *[*x_dq.input, ""][1:3]),
            "weight": constant_quantization(graph, *[*w_dq.input, ""][1:3]),
            "output": constant_quantization(graph, *[*quantize.input, ""][1:3]),
        }
        for operand, quantization in operands.items():
            if isinstance(quantization, str):
                return kept(node, f"{operand}: {quantization}")
        replaced = [node, quantize]
        # The dequantized operands go too unless something else reads them.
        for dequantize in (x_dq, w_dq):
            if graph.used_only_by(dequantize.output[0], [node]):
                replaced.insert(0, dequantize)
        return convert_quantized_matmul(
            graph,
            node,
            replaced,
            policy,
            x_dq.input[0],
            operands["activation"],
            graph.constant(w_dq.input[0]),
            operands["weight"],
            operands["output"],
            quantize.output[0],
        )
