"""What the quantized MatMul and Gemm rules (QLinearMatMul, QDQ MatMul, QDQ Gemm) share: reading
a QDQ pattern, checks on the product's operands and bias, and the SparseQGemm replacement."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ortsparse.rewriter.conversion import Conversion, display_name, kept
from ortsparse.rewriter.decisions import Decision
from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.quantization import (
    ACTIVATION_TYPES,
    Quantization,
    constant_quantization,
    dequantize_axis,
    output_scales,
    per_tensor,
    weight_scales,
)
from ortsparse.rewriter.sparse_qgemm import FORMAT, QuantizedProduct, sparse_qgemm_node

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
    """QuantizeLinear(product(DequantizeLinear(x), DequantizeLinear(W), ...)): the nodes around
    the product and the quantization they read."""

    x_dequantize: onnx.NodeProto
    w_dequantize: onnx.NodeProto
    quantize: onnx.NodeProto
    x: Quantization
    w: Quantization
    y: Quantization

    def replaced(
        self, graph: Graph, node: onnx.NodeProto, *more_dequantizes: onnx.NodeProto
    ) -> list[onnx.NodeProto]:
        """What one SparseQGemm replaces: ``node``, its QuantizeLinear, and those of its
        DequantizeLinear nodes that nothing else reads."""
        replaced = [node, self.quantize]
        for dequantize in (self.x_dequantize, self.w_dequantize, *more_dequantizes):
            if graph.used_only_by(dequantize.output[0], [node]):
                replaced.insert(0, dequantize)
        return replaced


def qdq_product(graph: Graph, node: onnx.NodeProto, output_axis: int) -> QdqProduct | str:
    """The QDQ pattern around ``node``, whose input 0 is the activation and input 1 the weight
    out of a DequantizeLinear (as the rules' applies_to checks), or why it is not one SparseQGemm
    can take. ``output_axis``: the weight's axis of output channels, which per-channel weight
    scales must run along."""
    x_dequantize = dequantized_by(graph, node.input[0])
    w_dequantize = dequantized_by(graph, node.input[1])
    quantize = graph.sole_consumer(node.output[0])
    if x_dequantize is None:
        return "the activation does not come from a DequantizeLinear"
    if quantize is None or quantize.op_type != "QuantizeLinear" or not is_default_domain(quantize):
        return "the product is not quantized by one QuantizeLinear alone"
    operands = {
        "activation": constant_quantization(graph, *[*x_dequantize.input, ""][1:3]),
        "weight": constant_quantization(graph, *[*w_dequantize.input, ""][1:3]),
        "output": constant_quantization(graph, *[*quantize.input, ""][1:3]),
    }
    for operand, quantization in operands.items():
        if isinstance(quantization, str):
            return f"{operand}: {quantization}"
    # On a 2-D weight, axis -2 is 0 and -1 is 1; a single scale has no axis.
    if operands["weight"].scale.size > 1 and dequantize_axis(w_dequantize) % 2 != output_axis:
        return "the weight is quantized along K, not per output channel"
    return QdqProduct(
        x_dequantize,
        w_dequantize,
        quantize,
        operands["activation"],
        operands["weight"],
        operands["output"],
    )


@dataclass(frozen=True)
class QuantizedBias:
    """An int32 bias as the model stores it, before any check."""

    values: np.ndarray
    quantization: Quantization


def convert_quantized_matmul(
    graph: Graph,
    node: onnx.NodeProto,
    replaced: list[onnx.NodeProto],
    policy: SparsityPolicy,
    x: str,
    x_quantization: Quantization,
    weight: np.ndarray | None,
    w_quantization: Quantization,
    y_quantization: Quantization,
    output: str,
    bias: QuantizedBias | None = None,
) -> Conversion:
    """Replaces ``replaced`` (the nodes computing the quantized product of ``node``, which is
    among them) by one SparseQGemm reading ``x`` and writing ``output``, when eligible and worth
    it. ``weight`` is [K, N]."""
    if weight is None:
        return kept(node, "weight is not a constant")
    if weight.ndim != 2:
        return kept(node, f"weight is {weight.ndim}-D, SparseQGemm takes a 2-D weight")
    weight_shape = weight.shape
    if weight.dtype != np.int8:
        return kept(node, f"weight is {weight.dtype}, SparseQGemm takes int8", weight_shape)
    x_type = graph.elem_type(x)
    if x_type not in ACTIVATION_TYPES:
        return kept(node, "the activation is neither uint8 nor int8", weight_shape)
    if graph.elem_type(output) not in (None, 0, x_type):
        return kept(node, "the output's type differs from the activation's", weight_shape)
    x_shape = graph.shape(x)
    if x_shape is None or len(x_shape) < 2:
        return kept(node, "the activation's rank is unknown or below 2", weight_shape)
    x_params, y_params = per_tensor(x_quantization), per_tensor(y_quantization)
    if x_params is None or y_params is None:
        return kept(node, "the activation or output is quantized per channel", weight_shape)
    w_scales = weight_scales(w_quantization, weight.shape[1])
    if isinstance(w_scales, str):
        return kept(node, w_scales, weight_shape)
    bias_values = None
    if bias is not None:
        bias_values = _bias_values(bias, x_params[0], w_scales, weight)
        if isinstance(bias_values, str):
            return kept(node, bias_values, weight_shape)

    verdict = policy.judge_quantized(weight)
    if not verdict.rewrite:
        return kept(node, verdict.reason, weight_shape, verdict.sparsity)
    product = QuantizedProduct(
        x=x,
        weight=weight,
        output_scales=output_scales(x_params[0], w_scales, y_params[0]),
        x_zero_point=x_params[1],
        y_zero_point=y_params[1],
        output=output,
        bias=bias_values,
    )
    sparse_node = sparse_qgemm_node(graph, display_name(node), product)
    graph.replace(replaced, [sparse_node])
    decision = Decision(
        display_name(node),
        node.op_type,
        weight_shape,
        verdict.sparsity,
        FORMAT,
        True,
        verdict.reason,
    )
    return Conversion(decision, sparse_node.name)


def _bias_values(
    bias: QuantizedBias, x_scale: np.float32, w_scales: np.ndarray, weight: np.ndarray
) -> np.ndarray | str:
    """The int32 [N] bias SparseQGemm adds to the product, or why there is none.

    ORT's QGemm adds the stored int32 values to its int32 product whatever their
    DequantizeLinear says, which is what the model means only with zero point 0 and scale
    x_scale * w_scale[n] (what onnxruntime.quantization writes); any other bias is left to ORT.
    """
    n = weight.shape[1]
    if bias.values.dtype != np.int32:
        return f"the bias is {bias.values.dtype}, not int32"
    if bias.values.shape != (n,):
        return f"the bias has shape {list(bias.values.shape)}, not [{n}]"
    if np.any(bias.quantization.zero_point != 0):
        return "the bias's zero point is not 0"
    scale = bias.quantization.scale.reshape(-1)
    if scale.size not in (1, n) or np.any(scale != np.float32(x_scale) * w_scales):
        return "the bias's scale is not x_scale * w_scale"
    # Within this reach neither ORT's int32 accumulator nor SparseQGemm's (which folds the zero
    # point's share into the bias) can overflow, so both sum exactly.
    reach = np.abs(bias.values.astype(np.int64)) + _MAX_ACTIVATION_SPAN * np.sum(
        np.abs(weight.astype(np.int64)), axis=0
    )
    if np.any(reach > _INT32_MAX):
        return "the bias is too large for an int32 accumulator"
    return bias.values
