"""MatMulInteger(A, constant int8 B, A_zp, B_zp = 0) -> SparseMatMulInteger(A, packed B, A_zp).

Dynamic quantization (ORT's ``quantize_dynamic``) writes MatMul as DynamicQuantizeLinear ->
MatMulInteger -> Cast -> Mul by the scales: the int32 product is the part worth a sparse kernel,
and what follows it stays with ORT."""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    display_name,
    kept,
    replaced_by,
)
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.integer_ops import activation_refusal, weight_zero_point_refusal
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_matmul_integer import sparse_matmul_integer_node


class MatMulIntegerToSparseMatMulInteger(ConversionRule):
    op_type = "MatMulInteger"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        a, b, a_zero_point, b_zero_point = [*node.input, "", ""][:4]
        weight = graph.constant(b)
        if weight is None:
            return kept(node, "weight is not a constant")
        if weight.ndim != 2:
            return kept(node, f"weight is {weight.ndim}-D, SparseMatMulInteger takes a 2-D weight")
        weight_shape = weight.shape
        if weight.dtype != np.int8:
            return kept(
                node, f"weight is {weight.dtype}, SparseMatMulInteger takes int8", weight_shape
            )
        refusal = weight_zero_point_refusal(graph, b_zero_point) or activation_refusal(
            graph, a, a_zero_point, "matrix"
        )
        if refusal:
            return kept(node, refusal, weight_shape)

        verdict = policy.judge_quantized(weight)
        if not verdict.rewrite:
            return kept(node, verdict.reason, weight_shape, verdict.sparsity)
        sparse_node = sparse_matmul_integer_node(
            graph, display_name(node), a, weight, a_zero_point, node.output[0]
        )
        return replaced_by(graph, node, [node], sparse_node, weight_shape, verdict)
