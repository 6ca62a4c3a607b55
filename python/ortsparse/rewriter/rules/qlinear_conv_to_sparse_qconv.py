"""QLinearConv(x, x_scale, x_zp, constant int8 w, w_scale, w_zp, y_scale, y_zp, constant B)
->  SparseQConv(x, packed w, B)."""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.quantization import constant_quantization
from ortsparse.rewriter.quantized_conv import convert_quantized_conv


class QLinearConvToSparseQConv(ConversionRule):
    op_type = "QLinearConv"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias = [*node.input, ""][:9]
        parameters = {
            "x": constant_quantization(graph, x_scale, x_zp),
            "w": constant_quantization(graph, w_scale, w_zp),
            "y": constant_quantization(graph, y_scale, y_zp),
        }
        for operand, quantization in parameters.items():
            if isinstance(quantization, Refusal):
                return kept(node, f"{operand}: {quantization}")
        bias_value = graph.constant(bias) if bias else None
        if bias and bias_value is None:
            return kept(node, "bias is not a constant")
        return convert_quantized_conv(
            graph,
            node,
            [node],
            policy,
            x,
            parameters["x"],
            graph.constant(w),
            parameters["w"],
            bias_value,
            parameters["y"],
            node.output[0],
        )
