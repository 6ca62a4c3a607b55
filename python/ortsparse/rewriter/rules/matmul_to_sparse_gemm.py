"""MatMul(A, W) with a constant 2-D W and A of rank >= 2  ->  SparseGemm(A, packed W)."""

from __future__ import annotations

import onnx

from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    constant_weight,
    kept,
    packed_sparse_op,
    rewritten,
    static_weight_shape,
)
from ortsparse.rewriter.cost_model import representative_m
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_gemm import SparseGemm


class MatMulToSparseGemm(ConversionRule):
    op_type = "MatMul"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        a, b = node.input
        weight = constant_weight(graph, b)
        if weight.value is None:
            return kept(node, weight.problem, static_weight_shape(graph, b))
        weight_shape = weight.value.shape
        a_shape = graph.shape(a)
        if a_shape is None:
            return kept(node, "rank of A is unknown (SparseGemm needs rank >= 2)", weight_shape)
        if len(a_shape) < 2:
            return kept(
                node, "A is 1-D (a vector-matrix product; SparseGemm needs rank >= 2)", weight_shape
            )
        if graph.elem_type(a) != onnx.TensorProto.FLOAT:
            return kept(node, "A is not float32", weight_shape)

        verdict = policy.judge(weight.value, representative_m(a_shape[:-1]))
        if not verdict.rewrite:
            return kept(node, verdict.reason, weight_shape, verdict.sparsity)
        gemm = packed_sparse_op(
            SparseGemm, graph, node, a, weight.value, verdict.format, node.output[0]
        )
        graph.replace([node], [gemm.to_node()])
        return rewritten(node, gemm, verdict)
