"""What the quantized Conv rules (QLinearConv, QDQ Conv) share: checks on the convolution's
operands and attributes, and the SparseQConv replacement."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conv_window import explicit_pads
from ortsparse.rewriter.conversion import Conversion, display_name, kept, replaced_by
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import FloatBias, QuantizedBias, product_bias
from ortsparse.rewriter.quantization import Quantization, product_quantization
from ortsparse.rewriter.sparse_qconv import QuantizedConv, conv_quad_matrix, sparse_qconv_node


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
    if weight is None:
        return kept(node, "weight is not a constant")
    if weight.ndim != 4:
        return kept(node, f"weight is {weight.ndim}-D, SparseQConv is a 2-D convolution")
    n, c, kh, kw = weight.shape
    matrix_shape = (c * kh * kw, n)
    if weight.dtype != np.int8:
        return kept(node, f"weight is {weight.dtype}, SparseQConv takes int8", matrix_shape)
    attributes = attribute_values(node)
    if attributes.get("group", 1) != 1:
        return kept(node, "grouped convolution, SparseQConv takes group=1", matrix_shape)
    x_shape = graph.shape(x)
    if x_shape is None or len(x_shape) != 4:
        return kept(node, "the activation is not known to be NCHW (rank 4)", matrix_shape)
    quantization = product_quantization(
        graph, x, output, x_quantization, w_quantization, y_quantization, n
    )
    if isinstance(quantization, str):
        return kept(node, quantization, matrix_shape)
    matrix = conv_quad_matrix(weight)
    bias = product_bias(bias, quantization, matrix)
    if isinstance(bias, str):
        return kept(node, bias, matrix_shape)
    strides = tuple(attributes.get("strides", (1, 1)))
    dilations = tuple(attributes.get("dilations", (1, 1)))
    pads = explicit_pads(attributes, x_shape[2:], [kh, kw], strides, dilations)
    if pads is None:
        return kept(
            node, "auto_pad SAME_* needs X's height and width, which are not static", matrix_shape
        )

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
        strides=strides,
        dilations=dilations,
        pads=pads,
        output=output,
    )
    sparse_node = sparse_qconv_node(graph, display_name(node), conv)
    return replaced_by(graph, node, replaced, sparse_node, matrix_shape, verdict)
