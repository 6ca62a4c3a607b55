"""The QDQ form of a quantized Conv, as onnxruntime.quantization writes it:

    QuantizeLinear(Conv(DequantizeLinear(x_q), DequantizeLinear(constant int8 W),
                        DequantizeLinear(constant int32 B)))
    ->  SparseQConv(x_q, packed W, B)

ORT itself runs this pattern as QLinearConv, with B's integers as they are: SparseQConv does the
same, so the bias's scale must be x_scale * w_scale (what the quantizer writes), or the node stays.
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conversion import Conversion, ConversionRule, kept
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.quantization import constant_quantization, dequantize_axis, per_tensor
from ortsparse.rewriter.quantized_conv import convert_quantized_conv


def _is(node: onnx.NodeProto | None, op_type: str) -> bool:
    return node is not None and node.op_type == op_type and node.domain in ("", "ai.onnx")


class QdqConvToSparseQConv(ConversionRule):
    op_type = "Conv"

    def applies_to(self, graph: Graph, node: onnx.NodeProto) -> bool:
        """A Conv whose weight comes out of a DequantizeLinear is a quantized one: the float rule
        could not use its weight anyway."""
        return _is(graph.producer(node.input[1]), "DequantizeLinear")

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        x_dq = graph.producer(node.input[0])
        w_dq = graph.producer(node.input[1])
        bias_name = node.input[2] if len(node.input) > 2 else ""
        b_dq = graph.producer(bias_name) if bias_name else None
        quantize = graph.sole_consumer(node.output[0])
        if not _is(x_dq, "DequantizeLinear"):
            return kept(node, "the activation does not come from a DequantizeLinear")
        if not _is(quantize, "QuantizeLinear"):
            return kept(node, "the convolution is not quantized by one QuantizeLinear alone")
        if dequantize_axis(w_dq) not in (0, -4):
            return kept(node, "the weight is quantized along another axis than its output channels")
        if bias_name and not _is(b_dq, "DequantizeLinear"):
            return kept(node, "the bias does not come from a DequantizeLinear")
        operands = {
            "activation": constant_quantization(graph, *[*x_dq.input, ""][1:3]),
            "weight": constant_quantization(graph, *[*w_dq.input, ""][1:3]),
            "output": constant_quantization(graph, *[*quantize.input, ""][1:3]),
        }
        if b_dq is not None:
            operands["bias"] = constant_quantization(graph, *[*b_dq.input, ""][1:3])
        for operand, quantization in operands.items():
            if isinstance(quantization, str):
                return kept(node, f"{operand}: {quantization}")
        bias = None
        if b_dq is not None:
            bias = graph.constant(b_dq.input[0])
            problem = _bias_problem(bias, operands["bias"], operands["activation"], operands["weight"])
            if problem:
                return kept(node, problem)
        replaced = [node, quantize]
        # The dequantized operands go too unless something else reads them.
        for dequantize in (x_dq, w_dq, b_dq):
            if dequantize is not None and graph.used_only_by(dequantize.output[0], [node]):
                replaced.insert(0, dequantize)
        return convert_quantized_conv(
            graph,
            node,
            replaced,
            policy,
            x_dq.input[0],
            operands["activation"],
            graph.constant(w_dq.input[0]),
            operands["weight"],
            bias,
            operands["output"],
            quantize.output[0],
        )


def _bias_problem(bias, bias_quantization, x_quantization, w_quantization) -> str:
    """Why the dequantized bias cannot be added as the integers it holds ("" when it can)."""
    if bias is None:
        return "bias is not a constant"
    if bias.dtype != np.int32:
        return f"bias is {bias.dtype}, not int32"
    if np.any(bias_quantization.zero_point != 0):
        return "the bias's zero point is not 0"
    x_params = per_tensor(x_quantization)
    if x_params is None:
        return "the activation is quantized per channel"
    expected = (x_params[0] * w_quantization.scale.astype(np.float32)).astype(np.float32)
    scale = bias_quantization.scale.astype(np.float32)
    if scale.size not in (1, expected.size) or not np.array_equal(
        np.broadcast_to(scale.reshape(-1), expected.reshape(-1).shape), expected.reshape(-1)
    ):
        return "the bias's scale is not x_scale * w_scale, so its integers are not the sum's units"
    return ""
