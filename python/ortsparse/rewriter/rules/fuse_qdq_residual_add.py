"""SparseQConv -> DequantizeLinear, DequantizeLinear(R) -> Add -> QuantizeLinear  ->  SparseQConv
with input R (a residual Add as ORT's QLinearAdd computes it).

ORT's graph optimizations (extended level and up) run this QDQ Add, the join of a quantized ResNet
block, as one QLinearAdd; SparseQConv with R adds in the same arithmetic straight after
requantizing, while its output is still in cache, so the result is identical. Every quantization
must be a constant per-tensor one of the conv output's 8-bit type, the conv's quantized output must
feed nothing else, and R must have the output's shape statically (the op does not broadcast).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.fusion import (
    QuantizedEpilogueRule,
    QuantizedFusion,
    other_operand,
    same_static_shape,
    sole_default_consumer,
)
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.qdq_pattern import dequantized_by
from ortsparse.rewriter.quantization import constant_quantization, per_tensor
from ortsparse.rewriter.sparse_qconv import OP_TYPE, RESIDUAL_INPUT


class FuseQdqResidualAdd(QuantizedEpilogueRule):
    label = "Add"

    def match(self, graph: Graph, node: onnx.NodeProto) -> QuantizedFusion | None:
        if node.op_type != OP_TYPE or len(node.input) > RESIDUAL_INPUT:
            return None
        output = node.output[0]
        conv_dequantize = sole_default_consumer(graph, output, "DequantizeLinear")
        if conv_dequantize is None or conv_dequantize.input[0] != output:
            return None
        add = sole_default_consumer(graph, conv_dequantize.output[0], "Add")
        residual_float = other_operand(add, conv_dequantize.output[0]) if add else None
        residual_dequantize = dequantized_by(graph, residual_float) if residual_float else None
        quantize = sole_default_consumer(graph, add.output[0], "QuantizeLinear") if add else None
        if residual_dequantize is None or quantize is None:
            return None
        residual = residual_dequantize.input[0]
        element_type = graph.elem_type(output)
        if graph.elem_type(residual) != element_type or not same_static_shape(
            graph.shape(residual), graph.shape(output)
        ):
            return None
        if graph.elem_type(quantize.output[0]) != element_type:
            return None
        operands = [conv_dequantize, residual_dequantize]
        if add.input[0] == residual_float:
            operands.reverse()
        quantizations = [_per_tensor(graph, n, element_type) for n in (*operands, quantize)]
        if any(quantization is None for quantization in quantizations):
            return None
        absorbed = [conv_dequantize, add, quantize]
        if graph.used_only_by(residual_float, [add]):
            absorbed.insert(1, residual_dequantize)
        fused = onnx.NodeProto()
        fused.CopyFrom(node)
        while len(fused.input) < RESIDUAL_INPUT:
            fused.input.append("")  # no bias
        fused.input.append(residual)
        fused.output[0] = quantize.output[0]
        fused.attribute.extend(
            [
                helper.make_attribute("add_scales", [float(scale) for scale, _ in quantizations]),
                helper.make_attribute("add_zero_points", [zp for _, zp in quantizations]),
                helper.make_attribute("residual_input", 0 if add.input[0] == residual_float else 1),
            ]
        )
        return QuantizedFusion(tuple(absorbed), fused)


def _per_tensor(
    graph: Graph, node: onnx.NodeProto, element_type: int
) -> tuple[np.float32, int] | None:
    """The constant per-tensor (scale, zero point) of a QuantizeLinear or DequantizeLinear whose
    8-bit side is of ``element_type``, else None."""
    quantization = constant_quantization(graph, *[*node.input, ""][1:3])
    if isinstance(quantization, Refusal):
        return None
    if onnx.helper.np_dtype_to_tensor_dtype(quantization.zero_point.dtype) != element_type:
        return None
    return per_tensor(quantization)
