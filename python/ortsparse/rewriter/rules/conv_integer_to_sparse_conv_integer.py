"""ConvInteger(X, constant int8 W, X_zp, W_zp = 0) -> SparseConvInteger(X, packed W, X_zp).

ORT's ``quantize_dynamic`` writes each Conv as DynamicQuantizeLinear -> ConvInteger -> Cast ->
Mul by the scales (-> Add of the bias); the int32 convolution becomes the sparse op and the rest
stays with ORT."""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conv_window import conv_window
from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    display_name,
    kept,
    replaced_by,
)
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.integer_ops import activation_refusal, weight_zero_point_refusal
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_conv_integer import sparse_conv_integer_node
from ortsparse.rewriter.sparse_qconv import conv_quad_matrix, int8_conv_weight_refusal


class ConvIntegerToSparseConvInteger(ConversionRule):
    op_type = "ConvInteger"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        x, w, x_zero_point, w_zero_point = [*node.input, "", ""][:4]
        weight = graph.constant(w)
        attributes = attribute_values(node)
        refusal, matrix_shape = int8_conv_weight_refusal(weight, attributes, "SparseConvInteger")
        refusal = (
            refusal
            or weight_zero_point_refusal(graph, w_zero_point)
            or activation_refusal(graph, x, x_zero_point, "image")
        )
        if refusal:
            return kept(node, refusal, matrix_shape)
        window = conv_window(attributes, graph.shape(x)[2:], list(weight.shape[2:]))
        if isinstance(window, Refusal):
            return kept(node, window, matrix_shape)

        verdict = policy.judge_quantized(conv_quad_matrix(weight))
        if not verdict.rewrite:
            return kept(node, verdict.reason, matrix_shape, verdict.sparsity)
        sparse_node = sparse_conv_integer_node(
            graph, display_name(node), x, weight, x_zero_point, window, node.output[0]
        )
        return replaced_by(graph, node, [node], sparse_node, matrix_shape, verdict)
