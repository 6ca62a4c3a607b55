"""What the quantized Conv rules (QLinearConv, QDQ Conv) share: checks on the convolution's
operands and attributes, and the SparseQConv replacement."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conv_window import conv_window
from ortsparse.rewriter.conversion import Conversion, display_name, kept, replaced_by
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import FloatBias, QuantizedBias, product_bias
from ortsparse.rewriter.quantization import Quantization, product_quantization
from ortsparse.rewriter.sparse_qconv import (
    QuantizedConv,
    conv_quad_matrix,
    int8_conv_weight_refusal,
    sparse_qconv_node,
)


def convert_quantized_conv(
    graph: Graph,
    node: onnx.NodeProto,
    replaced: list[onnx.NodeProto],
    policy: SparsityPolicy,
    x: str,
    x_quantization: Quantization,
    weight: np.ndarray | None,
    w_quantization: Quantization,
    bias: QuantizedBias | FloatBias | np.ndarray | None,
    y_quantization: Quantization | None,
    output: str,
) -> Conversion:
    """Replaces ``replaced`` (the nodes computing the quantized convolution of ``node``, which is
    among them) by one SparseQConv reading ``x`` and writing ``output``, when eligible and worth
    it; ``output`` is float where ``y_quantization`` is None. ``bias``: a QDQ bias (int32, or a
    float32 constant for a float output), or QLinearConv's B (int32 in units of x_scale *
    w_scale[n])."""
    attributes = attribute_values(node)
    refusal, matrix_shape = int8_conv_weight_refusal(weight, attributes, "SparseQConv")
    if refusal:
        return kept(node, refusal, matrix_shape)
    n, _, kh, kw = weight.shape
    x_shape = graph.shape(x)
    if x_shape is None or len(x_shape) != 4:
        return kept(node, "the activation is not known to be NCHW (rank 4)", matrix_shape)
    quantization = product_quantization(
        graph, x, output, x_quantization, w_quantization, y_quantization, n
    )
    if isinstance(quantization, Refusal):
        return kept(node, quantization, matrix_shape)
    matrix = conv_quad_matrix(weight)
    bias = product_bias(bias, quantization, matrix)
    if isinstance(bias, Refusal):
        return kept(node, bias, matrix_shape)
    window = conv_window(attributes, x_shape[2:], [kh, kw])
    if isinstance(window, Refusal):
        return kept(node, window, matrix_shape)

    verdict = policy.judge_quantized(matrix)
    if not verdict.rewrite:
        return kept(node, verdict.reason, matrix_shape, verdict.sparsity)
    conv = QuantizedConv(
        x=x,
        weight=weight,
        bias=bias,
        output_scales=quantization.output_scales,
        x_zero_point=quantization.x_zero_point,
        y_zero_point=quantization.y_zero_point,
        strides=window.strides,
        dilations=window.dilations,
        pads=window.pads,
        output=output,
    )
    sparse_node = sparse_qconv_node(graph, display_name(node), conv)
    return replaced_by(graph, node, replaced, sparse_node, matrix_shape, verdict)
