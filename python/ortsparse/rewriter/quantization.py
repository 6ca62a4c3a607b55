"""Reading the quantization parameters of QDQ and QOperator nodes, as SparseQGemm needs them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph, attribute_values

ACTIVATION_TYPES = (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)


@dataclass(frozen=True)
class Quantization:
    scale: np.ndarray  # float32, a scalar or one per channel
    zero_point: np.ndarray  # integer, same size as scale


def constant_quantization(
    graph: Graph, scale_name: str, zero_point_name: str
) -> Quantization | Refusal:
    """The constant scale and zero point named (an absent zero point is 0), or why they are
    unusable."""
    scale = graph.constant(scale_name)
    if scale is None:
        return Refusal("its scale is not a constant")
    if scale.dtype != np.float32:
        return Refusal(f"its scale is {scale.dtype}, not float32")
    if zero_point_name:
        zero_point = graph.constant(zero_point_name)
        if zero_point is None:
            return Refusal("its zero point is not a constant")
    else:
        zero_point = np.zeros(scale.shape, dtype=np.uint8)
    if zero_point.size != scale.size:
        return Refusal("its scale and zero point differ in size")
    return Quantization(scale, zero_point)


def per_tensor(quantization: Quantization) -> tuple[np.float32, int] | None:
    """(scale, zero point) when ``quantization`` is per tensor, else None."""
    if quantization.scale.size != 1:
        return None
    return np.float32(quantization.scale.reshape(())), int(quantization.zero_point.reshape(()))


def weight_scales(quantization: Quantization, n: int) -> np.ndarray | Refusal:
    """The weight's scale for each of its N output columns, or why they are unusable: SparseQGemm
    takes symmetric int8 weights, quantized per tensor or per output column."""
    if np.any(quantization.zero_point != 0):
        return Refusal("the weight's zero point is not 0")
    if quantization.zero_point.dtype != np.int8:
        return Refusal(f"the weight is {quantization.zero_point.dtype}, SparseQGemm takes int8")
    if quantization.scale.size not in (1, n):
        return Refusal("the weight's scales are neither per tensor nor per output column")
    return np.broadcast_to(quantization.scale.reshape(-1), (n,)).astype(np.float32)


def output_scales(x_scale: np.float32, w_scales: np.ndarray, y_scale: np.float32) -> np.ndarray:
    """x_scale * w_scale / y_scale per output column, in float32 and in that order, as ORT's
    QLinearMatMul and QLinearConv compute their requantization scales (bit-identical results
    depend on it)."""
    return ((np.float32(x_scale) * w_scales.astype(np.float32)) / np.float32(y_scale)).astype(
        np.float32
    )


@dataclass(frozen=True)
class ProductQuantization:
    """What the requantization of a quantized product takes from its operands, or its
    dequantization where the output stays float."""

    x_scale: np.float32
    x_zero_point: int
    y_zero_point: int | None  # None: the output is float
    w_scales: np.ndarray  # float32 [N]
    # float32 [N]: x_scale * w_scale / y_scale, or x_scale * w_scale for a float output
    output_scales: np.ndarray

    @property
    def dequantizes(self) -> bool:
        return self.y_zero_point is None


def product_quantization(
    graph: Graph,
    x: str,
    output: str,
    x_quantization: Quantization,
    w_quantization: Quantization,
    y_quantization: Quantization | None,
    n: int,
) -> ProductQuantization | Refusal:
    """The quantization of a product of ``x`` into ``output`` with N output channels as our INT8
    ops take it (uint8 or int8 activations per tensor, the output of their type, or float where
    ``y_quantization`` is None, symmetric int8 weights per tensor or per channel), or why it is
    not one."""
    x_type = graph.elem_type(x)
    if x_type not in ACTIVATION_TYPES:
        return Refusal("the activation is neither uint8 nor int8")
    y_type = x_type if y_quantization is not None else onnx.TensorProto.FLOAT
    if graph.elem_type(output) not in (None, 0, y_type):
        return Refusal("the output's type is neither the activation's nor float")
    x_params = per_tensor(x_quantization)
    y_params = per_tensor(y_quantization) if y_quantization is not None else None
    if x_params is None or (y_quantization is not None and y_params is None):
        return Refusal("the activation or output is quantized per channel")
    w_scales = weight_scales(w_quantization, n)
    if isinstance(w_scales, Refusal):
        return w_scales
    if y_params is None:
        return ProductQuantization(
            x_scale=x_params[0],
            x_zero_point=x_params[1],
            y_zero_point=None,
            w_scales=w_scales,
            output_scales=(np.float32(x_params[0]) * w_scales).astype(np.float32),
        )
    return ProductQuantization(
        x_scale=x_params[0],
        x_zero_point=x_params[1],
        y_zero_point=y_params[1],
        w_scales=w_scales,
        output_scales=output_scales(x_params[0], w_scales, y_params[0]),
    )


def float_output_bias(bias: np.ndarray | None, quantization: ProductQuantization) -> np.ndarray:
    """The float32 [N] bias a product with float output adds after scaling its sums: an int32 one
    (in units of x_scale * w_scale[n]) as DequantizeLinear computes it, a float32 one as it is,
    none as zeros."""
    if bias is None:
        return np.zeros(len(quantization.w_scales), np.float32)
    if bias.dtype == np.float32:
        return bias
    return bias.astype(np.float32) * quantization.output_scales


def dequantize_axis(node: onnx.NodeProto) -> int:
    """The axis a DequantizeLinear / QuantizeLinear node's per-channel parameters run along."""
    return int(attribute_values(node).get("axis", 1))
