"""What the quantized MatMul and Gemm rules (QLinearMatMul, QDQ MatMul, QDQ Gemm) share: checks on
the product's operands and the SparseQGemm replacement."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conversion import Conversion, display_name, kept
from ortsparse.rewriter.decisions import Decision
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import QuantizedBias
from ortsparse.rewriter.quantization import (
    ACTIVATION_TYPES,
    Quantization,
    output_scales,
    per_tensor,
    weight_scales,
)
from ortsparse.rewriter.sparse_qgemm import FORMAT, QuantizedProduct, sparse_qgemm_node

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
        bias_values = bias.in_product_units(x_params[0], w_scales, weight)
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
