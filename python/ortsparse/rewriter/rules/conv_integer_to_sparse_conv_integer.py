"""ConvInteger(X, constant int8 W, X_zp, W_zp = 0) -> SparseConvInteger(X, packed W, X_zp).

ORT's ``quantize_dynamic`` writes each Conv as DynamicQuantizeLinear -> ConvInteger -> Cast ->
Mul by the scales (-> Add of the bias); the int32 convolution becomes the sparse op and the rest
stays with ORT."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conv_window import explicit_pads
from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    display_name,
    kept,
    replaced_by,
)
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.integer_ops import activation_refusal, weight_zero_point_refusal
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_conv_integer import sparse_conv_integer_node
from ortsparse.rewriter.sparse_qconv import conv_quad_matrix


class ConvIntegerToSparseConvInteger(ConversionRule):
    op_type = "ConvInteger"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        x, w, x_zero_point, w_zero_point = [*node.input, "", ""][:4]
        weight = graph.constant(w)
        if weight is None:
            return kept(node, "weight is not a constant")
        if weight.ndim != 4:
            return kept(node, f"weight is {weight.ndim}-D, SparseConvInteger is a 2-D convolution")
        n, c, kh, kw = weight.shape
        matrix_shape = (c * kh * kw, n)
        if weight.dtype != np.int8:
            return kept(
                node, f"weight is {weight.dtype}, SparseConvInteger takes int8", matrix_shape
            )
        attributes = attribute_values(node)
        if attributes.get("group", 1) != 1:
            return kept(node, "grouped convolution, SparseConvInteger takes group=1", matrix_shape)
        refusal = weight_zero_point_refusal(graph, w_zero_point) or activation_refusal(
            graph, x, x_zero_point, "image"
        )
        if refusal:
            return kept(node, refusal, matrix_shape)
        strides = tuple(attributes.get("strides", (1, 1)))
        dilations = tuple(attributes.get("dilations", (1, 1)))
        pads = explicit_pads(attributes, graph.shape(x)[2:], [kh, kw], strides, dilations)
        if pads is None:
            return kept(
                node,
                "auto_pad SAME_* needs X's height and width, which are not static",
                matrix_shape,
            )

        verdict = policy.judge_quantized(conv_quad_matrix(weight))
        if not verdict.rewrite:
            return kept(node, verdict.reason, matrix_shape, verdict.sparsity)
        window = {"strides": strides, "dilations": dilations, "pads": pads}
        sparse_node = sparse_conv_integer_node(
            graph, display_name(node), x, weight, x_zero_point, window, node.output[0]
        )
        return replaced_by(graph, node, [node], sparse_node, matrix_shape, verdict)
