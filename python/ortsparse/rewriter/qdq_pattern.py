"""Reading the QDQ patterns onnxruntime.quantization writes around a product (MatMul, Gemm,
Conv): the DequantizeLinear and QuantizeLinear nodes, their quantization, and the bias."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.quantization import (
    ProductQuantization,
    Quantization,
    constant_quantization,
    dequantize_axis,
    float_output_bias,
)

# The most |x - x_zero_point| can be for uint8 or int8 activations and zero points.
_MAX_ACTIVATION_SPAN = 255
_INT32_MAX = np.iinfo(np.int32).max


def dequantized_by(graph: Graph, name: str) -> onnx.NodeProto | None:
    """The DequantizeLinear writing ``name``, if that is what writes it."""
    producer = graph.producer(name)
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    return producer if is_default_domain(producer) else None


@dataclass(frozen=True)
class QdqProduct:
    """QuantizeLinear(product(DequantizeLinear(x), DequantizeLinear(W), ...)), or the product
    alone where its float output goes to anything but one QuantizeLinear (the graph dequantizes
    it): the nodes around the product and the quantization they read."""

    x_dequantize: onnx.NodeProto
    w_dequantize: onnx.NodeProto
    quantize: onnx.NodeProto | None  # None: the product's output stays float
    x: Quantization
    w: Quantization
    y: Quantization | None  # the QuantizeLinear's

    def output(self, node: onnx.NodeProto) -> str:
        """What the sparse op replacing ``node`` writes: the QuantizeLinear's output, or
        ``node``'s own float output."""
        return node.output[0] if self.quantize is None else self.quantize.output[0]

    def bias(
        self, graph: Graph, name: str, fused_op: str
    ) -> QuantizedBias | FloatBias | None | Refusal:
        """The product's bias input ``name`` (None where it has none) as its output's form takes
        it, or why it is unusable: an int32 one dequantized as ORT's ``fused_op`` takes it, or,
        for a float output, a float32 constant too."""
        if not name:
            return None
        if self.quantize is None:
            return float_product_bias(graph, name, fused_op)
        return quantized_bias(graph, name, fused_op)

    def replaced(
        self, graph: Graph, node: onnx.NodeProto, bias: QuantizedBias | FloatBias | None = None
    ) -> list[onnx.NodeProto]:
        """What one sparse op replaces: ``node``, its QuantizeLinear, and those of its
        DequantizeLinear nodes (the bias's too) that nothing else reads."""
        replaced = [node] if self.quantize is None else [node, self.quantize]
        bias_dequantize = [bias.dequantize] if isinstance(bias, QuantizedBias) else []
        for dequantize in (self.x_dequantize, self.w_dequantize, *bias_dequantize):
            if graph.used_only_by(dequantize.output[0], [node]):
                replaced.insert(0, dequantize)
        return replaced


def qdq_product(
    graph: Graph, node: onnx.NodeProto, output_axis: int, weight_rank: int = 2
) -> QdqProduct | Refusal:
    """The QDQ pattern around ``node``, whose input 0 is the activation and input 1 the weight
    out of a DequantizeLinear (as the rules' applies_to checks), or why it is not one our INT8 ops
    can take. ``output_axis``: the weight's axis of output channels (of ``weight_rank``), which
    per-channel weight scales must run along."""
    x_dequantize = dequantized_by(graph, node.input[0])
    w_dequantize = dequantized_by(graph, node.input[1])
    quantize = graph.sole_consumer(node.output[0])
    if x_dequantize is None:
        return Refusal("the activation does not come from a DequantizeLinear")
    if quantize is None or quantize.op_type != "QuantizeLinear" or not is_default_domain(quantize):
        quantize = None
    operands = {
        "activation": constant_quantization(graph, *[*x_dequantize.input, ""][1:3]),
        "weight": constant_quantization(graph, *[*w_dequantize.input, ""][1:3]),
    }
    if quantize is not None:
        operands["output"] = constant_quantization(graph, *[*quantize.input, ""][1:3])
    for operand, quantization in operands.items():
        if isinstance(quantization, Refusal):
            return Refusal(f"{operand}: {quantization}")
    # A negative axis counts from the last; a single scale has no axis.
    axis = dequantize_axis(w_dequantize) % weight_rank
    if operands["weight"].scale.size > 1 and axis != output_axis:
        return Refusal("the weight is quantized along an input axis, not per output channel")
    return QdqProduct(
        x_dequantize,
        w_dequantize,
        quantize,
        operands["activation"],
        operands["weight"],
        operands.get("output"),
    )


@dataclass(frozen=True)
class QuantizedBias:
    """An int32 bias as a QDQ model stores it, before any check."""

    values: np.ndarray
    quantization: Quantization
    dequantize: onnx.NodeProto  # the DequantizeLinear the sparse op replaces with the product

    def in_product_units(
        self, x_scale: np.float32, w_scales: np.ndarray, weight: np.ndarray
    ) -> np.ndarray | Refusal:
        """The int32 [N] bias our INT8 ops add to the product of ``weight`` [K, N], or why there
        is none.

        ORT's QGemm and QLinearConv add the stored int32 values to their int32 product whatever
        their DequantizeLinear says, which is what the model means only with zero point 0 and
        scale x_scale * w_scale[n] (what onnxruntime.quantization writes); any other bias is left
        to ORT.
        """
        if np.any(self.quantization.zero_point != 0):
            return Refusal("the bias's zero point is not 0")
        scale = self.quantization.scale.reshape(-1)
        if scale.size not in (1, len(w_scales)) or np.any(scale != np.float32(x_scale) * w_scales):
            return Refusal("the bias's scale is not x_scale * w_scale")
        return int32_bias(self.values, weight)


def quantized_bias(graph: Graph, name: str, fused_op: str) -> QuantizedBias | Refusal:
    """The bias of product input ``name``, dequantized from int32 as ORT's ``fused_op`` (QGemm,
    QLinearConv) takes it, or why it is unusable."""
    dequantize = dequantized_by(graph, name)
    if dequantize is None:
        return Refusal(f"the bias is not dequantized from int32, as {fused_op} takes it")
    values = graph.constant(dequantize.input[0])
    if values is None:
        return Refusal("the bias is not a constant")
    quantization = constant_quantization(graph, *[*dequantize.input, ""][1:3])
    if isinstance(quantization, Refusal):
        return Refusal(f"bias: {quantization}")
    return QuantizedBias(values, quantization, dequantize)


@dataclass(frozen=True)
class FloatBias:
    """The float32 constant bias of a product whose output stays float."""

    values: np.ndarray

    def per_channel(self, n: int) -> np.ndarray | Refusal:
        """The bias as float32 [N], or why it is not one value per output channel."""
        if self.values.shape not in ((n,), (1, n)):
            return Refusal(f"the bias has shape {list(self.values.shape)}, not [{n}]")
        if not np.all(np.isfinite(self.values)):
            return Refusal("the bias is not finite")
        return self.values.reshape(n)


def float_product_bias(
    graph: Graph, name: str, fused_op: str
) -> QuantizedBias | FloatBias | Refusal:
    """The bias of a product whose output stays float, or why it is unusable: a float32 constant,
    or an int32 one dequantized as ORT's ``fused_op`` takes it. ORT runs a DequantizeLinear ->
    Gemm with float output as QGemm, which adds the stored integers to its int32 product whatever
    the DequantizeLinear's scale says, so only the scale x_scale * w_scale means the same to ORT
    and to the model."""
    if dequantized_by(graph, name) is not None:
        return quantized_bias(graph, name, fused_op)
    values = graph.constant(name)
    if values is None or values.dtype != np.float32:
        return Refusal(
            "the bias is neither a float32 constant nor dequantized from int32 as "
            f"{fused_op} takes it"
        )
    return FloatBias(values)


def int32_bias(values: np.ndarray, weight: np.ndarray) -> np.ndarray | Refusal:
    """``values`` as the int32 [N] bias of the product of ``weight`` [K, N], or why it cannot be."""
    n = weight.shape[1]
    if values.dtype != np.int32:
        return Refusal(f"the bias is {values.dtype}, not int32")
    if values.shape != (n,):
        return Refusal(f"the bias has shape {list(values.shape)}, not [{n}]")
    # Within this reach neither ORT's int32 accumulator nor ours (which folds the zero point's
    # share into the bias) can overflow, so both sum exactly.
    reach = np.abs(values.astype(np.int64)) + _MAX_ACTIVATION_SPAN * np.sum(
        np.abs(weight.astype(np.int64)), axis=0
    )
    if np.any(reach > _INT32_MAX):
        return Refusal("the bias is too large for an int32 accumulator")
    return values


def product_bias(
    bias: QuantizedBias | FloatBias | np.ndarray | None,
    quantization: ProductQuantization,
    matrix: np.ndarray,
) -> np.ndarray | None | Refusal:
    """The bias input of the INT8 op computing the product of ``matrix`` [K, N], or why there can
    be none. ``bias``: a QDQ bias, or a QOperator's int32 B. A requantized output takes int32 [N]
    in units of x_scale * w_scale[n] (or none), a float output float32 [N] (zeros for none)."""
    if isinstance(bias, QuantizedBias):
        values = bias.in_product_units(quantization.x_scale, quantization.w_scales, matrix)
    elif isinstance(bias, FloatBias):
        values = bias.per_channel(matrix.shape[1])
    elif bias is not None:
        values = int32_bias(bias, matrix)
    else:
        values = None
    if isinstance(values, Refusal) or not quantization.dequantizes:
        return values
    return float_output_bias(values, quantization)
