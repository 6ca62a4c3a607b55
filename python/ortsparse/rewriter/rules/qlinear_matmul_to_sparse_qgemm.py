"""QLinearMatMul(A, A_scale, A_zp, constant int8 B, B_scale, B_zp, Y_scale, Y_zp)
->  SparseQGemm(A, packed B)."""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.quantization import constant_quantization
from ortsparse.rewriter.quantized_matmul import convert_quantized_matmul


class QLinearMatMulToSparseQGemm(ConversionRule):
    op_type = "QLinearMatMul"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = [*node.input, ""][:8]
        parameters = {
            "A": constant_quantization(graph, a_scale, a_zp),
            "B": constant_quantization(graph, b_scale, b_zp),
            "Y": constant_quantization(graph, y_scale, y_zp),
        }
        for operand, quantization in parameters.items():
            if isinstance(quantization, Refusal):
                return kept(node, f"{operand}: {quantization}")
        return convert_quantized_matmul(
            graph,
            node,
            [node],
            policy,
            a,
            parameters["A"],
            graph.constant(b),
            parameters["B"],
            parameters["Y"],
            node.output[0],
        )
