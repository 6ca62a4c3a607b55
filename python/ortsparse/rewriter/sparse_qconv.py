"""The SparseQConv node (contract: docs/ops.md): an int8 conv weight packed in quads of four input
channels at one kernel tap, output requantized to X's type or dequantized to float."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.quad_packing import QUAD, PackedQuads, add_packed_quads, pack_quads
from ortsparse.rewriter.sparse_op import DOMAIN

OP_TYPE = "SparseQConv"
FORMAT = "quad4"
# Input R of a fused residual Add (inputs 0-5: X, the packed weight, output_scale, bias).
RESIDUAL_INPUT = 6


def conv_quad_matrix(weight: np.ndarray) -> np.ndarray:
    """int8 W [N, C, kH, kW] as the [kH * kW * C4, N] matrix whose quads SparseQConv stores:
    feature (i * kW + j) * C4 + c is W[:, c, i, j], with C rounded up to C4, a multiple of 4,
    by zero channels. Quads along it are then four channels at one tap."""
    n, c, kh, kw = weight.shape
    c4 = -(-c // QUAD) * QUAD
    matrix = np.zeros((kh * kw, c4, n), dtype=weight.dtype)
    matrix[:, :c] = weight.transpose(2, 3, 1, 0).reshape(kh * kw, c, n)
    return matrix.reshape(kh * kw * c4, n)


def int8_conv_weight_refusal(
    weight: np.ndarray | None, attributes: dict, op_type: str
) -> tuple[str, tuple[int, int] | None]:
    """Why ``op_type``, an int8 2-D convolution of group 1, cannot take the constant ``weight``
    of a Conv node with these attributes ("" when it can), and the weight's matrix shape (K, N)
    where it is known."""
    if weight is None:
        return "weight is not a constant", None
    if weight.ndim != 4:
        return f"weight is {weight.ndim}-D, {op_type} is a 2-D convolution", None
    n, c, kh, kw = weight.shape
    matrix_shape = (c * kh * kw, n)
    if weight.dtype != np.int8:
        return f"weight is {weight.dtype}, {op_type} takes int8", matrix_shape
    if attributes.get("group", 1) != 1:
        return f"grouped convolution, {op_type} takes group=1", matrix_shape
    return "", matrix_shape


def pack_conv_quads(weight: np.ndarray) -> PackedQuads:
    """Packs int8 W [N, C, kH, kW] in SparseQConv's quad order."""
    return pack_quads(conv_quad_matrix(weight))


@dataclass(frozen=True)
class QuantizedConv:
    """Y = requantize(conv2d(X - x_zero_point, W) + bias) of a quantized Conv, whatever form it
    had; or, where y_zero_point is None, the float Y = conv2d(X - x_zero_point, W) * output_scale
    + bias."""

    x: str  # uint8 or int8, NCHW
    weight: np.ndarray  # int8 [N, C, kH, kW], zero point 0
    # int32 [N], in units of x_scale * w_scale[n]; float32 [N] (required) for a float Y
    bias: np.ndarray | None
    # float32 [N]: x_scale * w_scale / y_scale, as ORT computes it; x_scale * w_scale for a float Y
    output_scales: np.ndarray
    x_zero_point: int
    y_zero_point: int | None
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    output: str


def sparse_qconv_node(graph: Graph, base: str, conv: QuantizedConv) -> onnx.NodeProto:
    """A SparseQConv node computing ``conv``, its packed weight, scales and bias added as
    initializers named after ``base``."""
    packed = pack_conv_quads(conv.weight)
    inputs = [
        conv.x,
        *add_packed_quads(graph, base, packed),
        graph.add_initializer(f"{base}.output_scale", conv.output_scales),
    ]
    if conv.bias is not None:
        inputs.append(graph.add_initializer(f"{base}.bias", conv.bias))
    n, c, kh, kw = conv.weight.shape
    quantized_output = {} if conv.y_zero_point is None else {"y_zero_point": conv.y_zero_point}
    return helper.make_node(
        OP_TYPE,
        inputs,
        [conv.output],
        name=graph.unique_name(f"{base}_{OP_TYPE}"),
        domain=DOMAIN,
        C=c,
        N=n,
        kernel_shape=[kh, kw],
        strides=list(conv.strides),
        dilations=list(conv.dilations),
        pads=list(conv.pads),
        format=FORMAT,
        x_zero_point=conv.x_zero_point,
        **quantized_output,
    )
