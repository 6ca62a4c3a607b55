"""What the quantized Conv rules (QLinearConv, QDQ Conv) share: checks on the convolution's
operands and attributes, and the SparseQConv replacement."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conv_window import explicit_pads
from ortsparse.rewriter.conversion import Conversion, display_name, kept
from ortsparse.rewriter.decisions import Decision
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import QuantizedBias, int32_bias
from ortsparse.rewriter.quantization import (
    ACTIVATION_TYPES,
    Quantization,
    output_scales,
    per_tensor,
    weight_scales,
)
from ortsparse.rewriter.sparse_qconv import (
    FORMAT,
    QuantizedConv,
    conv_quad_matrix,
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
    bias: QuantizedBias | np.ndarray | None,
    y_quantization: Quantization,
    output: str,
) -> Conversion:
    """Replaces ``replaced`` (the nodes computing the quantized convolution of ``node``, which is
    among them) by one SparseQConv reading ``x`` and writing ``output``, when eligible and worth
    it. ``bias``: a QDQ bias, or QLinearConv's B (int32 in units of x_scale * w_scale[n])."""
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
    x_type = graph.elem_type(x)
    if x_type not in ACTIVATION_TYPES:
        return kept(node, "the activation is neither uint8 nor int8", matrix_shape)
    if graph.elem_type(output) not in (None, 0, x_type):
        return kept(node, "the output's type differs from the activation's", matrix_shape)
    x_shape = graph.shape(x)
    if x_shape is None or len(x_shape) != 4:
        return kept(node, "the activation is not known to be NCHW (rank 4)", matrix_shape)
    x_params, y_params = per_tensor(x_quantization), per_tensor(y_quantization)
    if x_params is None or y_params is None:
        return kept(node, "the activation or output is quantized per channel", matrix_shape)
    w_scales = weight_scales(w_quantization, n)
    if isinstance(w_scales, str):
        return kept(node, w_scales, matrix_shape)
    matrix = conv_quad_matrix(weight)
    if isinstance(bias, QuantizedBias):
        bias = bias.in_product_units(x_params[0], w_scales, matrix)
    elif bias is not None:
        bias = int32_bias(bias, matrix)
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
        output_scales=output_scales(x_params[0], w_scales, y_params[0]),
        x_zero_point=x_params[1],
        y_zero_point=y_params[1],
        strides=strides,
        dilations=dilations,
        pads=pads,
        output=output,
    )
    sparse_node = sparse_qconv_node(graph, display_name(node), conv)
    graph.replace(replaced, [sparse_node])
    decision = Decision(
        display_name(node),
        node.op_type,
        matrix_shape,
        verdict.sparsity,
        FORMAT,
        True,
        verdict.reason,
    )
    return Conversion(decision, sparse_node.name)
