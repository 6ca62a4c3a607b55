"""What the quantized MatMul and Gemm rules (QLinearMatMul, QDQ MatMul, QDQ Gemm) share: checks on
the product's operands and the SparseQGemm replacement."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conversion import Conversion, display_name, kept, replaced_by
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.qdq_pattern import FloatBias, QuantizedBias, product_bias
from ortsparse.rewriter.quantization import Quantization, product_quantization
from ortsparse.rewriter.sparse_qgemm import QuantizedProduct, sparse_qgemm_node


def convert_quantized_matmul(
    graph: Graph,
    node: onnx.NodeProto,
    replaced: list[onnx.NodeProto],
    policy: SparsityPolicy,
    x: str,
    x_quantization: Quantization,
    weight: np.ndarray | None,
    w_quantization: Quantization,
    y_quantization: Quantization | None,
    output: str,
    bias: QuantizedBias | FloatBias | None = None,
) -> Conversion:
    """Replaces ``replaced`` (the nodes computing the quantized product of ``node``, which is
    among them) by one SparseQGemm reading ``x`` and writing ``output``, when eligible and worth
    it; ``output`` is float where ``y_quantization`` is None, when ``bias`` may be a float32
    constant. ``weight`` is [K, N]."""
    if weight is None:
        return kept(node, "weight is not a constant")
    if weight.ndim != 2:
        return kept(node, f"weight is {weight.ndim}-D, SparseQGemm takes a 2-D weight")
    weight_shape = weight.shape
    if weight.dtype != np.int8:
        return kept(node, f"weight is {weight.dtype}, SparseQGemm takes int8", weight_shape)
    x_shape = graph.shape(x)
    if x_shape is None or len(x_shape) < 2:
        return kept(node, "the activation's rank is unknown or below 2", weight_shape)
    quantization = product_quantization(
        graph, x, output, x_quantization, w_quantization, y_quantization, weight.shape[1]
    )
    if isinstance(quantization, Refusal):
        return kept(node, quantization, weight_shape)
    bias_values = product_bias(bias, quantization, weight)
    if isinstance(bias_values, Refusal):
        return kept(node, bias_values, weight_shape)

    verdict = policy.judge_quantized(weight)
    if not verdict.rewrite:
        return kept(node, verdict.reason, weight_shape, verdict.sparsity)
    product = QuantizedProduct(
        x=x,
        weight=weight,
        output_scales=quantization.output_scales,
        x_zero_point=quantization.x_zero_point,
        y_zero_point=quantization.y_zero_point,
        output=output,
        bias=bias_values,
    )
    sparse_node = sparse_qgemm_node(graph, display_name(node), product)
    return replaced_by(graph, node, replaced, sparse_node, weight_shape, verdict)
