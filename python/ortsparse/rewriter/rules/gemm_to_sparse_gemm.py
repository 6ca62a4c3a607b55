"""Gemm(A, B, C; alpha, beta, transA, transB) with a constant B  ->  SparseGemm.

    Y = alpha * A' · B' + beta * C

alpha and transB are folded into the packed weight; transA becomes a Transpose of A. A constant C
that broadcasts like a bias ([N], [1, N] or one element) becomes the bias, times beta. Any other C
(not constant, [M, N], [M, 1]) stays an explicit Add after the SparseGemm, with beta applied; the
residual fusion may still fold that Add when C has exactly the output's shape.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    constant_weight,
    display_name,
    kept,
    packed_sparse_op,
    rewritten,
    static_weight_shape,
)
from ortsparse.rewriter.cost_model import representative_m
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_gemm import SparseGemm

FLOAT = onnx.TensorProto.FLOAT


class GemmToSparseGemm(ConversionRule):
    op_type = "Gemm"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        attributes = attribute_values(node)
        alpha = attributes.get("alpha", 1.0)
        trans_a = bool(attributes.get("transA", 0))
        trans_b = bool(attributes.get("transB", 0))
        a, b = node.input[:2]

        weight = constant_weight(graph, b)
        if weight.value is None:
            return kept(node, weight.problem, static_weight_shape(graph, b, transposed=trans_b))
        oriented = weight.value.T if trans_b else weight.value
        effective_weight = (alpha * oriented).astype(np.float32)
        weight_shape = effective_weight.shape
        a_shape = graph.shape(a)
        if graph.elem_type(a) != FLOAT or a_shape is None or len(a_shape) != 2:
            return kept(node, "A is not a float32 matrix", weight_shape)

        rows = a_shape[1] if trans_a else a_shape[0]
        verdict = policy.judge(effective_weight, representative_m((rows,)))
        if not verdict.rewrite:
            return kept(node, verdict.reason, weight_shape, verdict.sparsity)

        new_nodes = [_transpose_a(graph, node, a_shape)] if trans_a else []
        x = new_nodes[0].output[0] if trans_a else a
        gemm = packed_sparse_op(
            SparseGemm, graph, node, x, effective_weight, verdict.format, node.output[0]
        )
        new_nodes += _sparse_gemm_plus_c(graph, node, gemm, attributes.get("beta", 1.0))
        graph.replace([node], new_nodes)
        return rewritten(node, gemm, verdict)


def _transpose_a(graph: Graph, node: onnx.NodeProto, a_shape: tuple) -> onnx.NodeProto:
    base = display_name(node)
    output = graph.unique_name(f"{base}_A_transposed")
    graph.set_type(output, FLOAT, a_shape[::-1])
    name = graph.unique_name(f"{base}_TransposeA")
    return helper.make_node("Transpose", [node.input[0]], [output], name=name, perm=[1, 0])


def _sparse_gemm_plus_c(
    graph: Graph, node: onnx.NodeProto, gemm: SparseGemm, beta: float
) -> list[onnx.NodeProto]:
    """Nodes computing ``gemm`` + beta * C: C as the bias when it is a bias-like constant, else
    an Add after ``gemm``."""
    c = node.input[2] if len(node.input) > 2 else ""
    if not c or beta == 0.0:  # beta 0 drops C from the result, whatever C holds
        return [gemm.to_node()]
    base = display_name(node)
    c_value = graph.constant(c)
    bias = gemm.bias_from(c_value, output_rank=2) if c_value is not None else None
    if bias is not None:
        gemm = gemm.replace(
            bias=graph.add_initializer(f"{base}.bias", (beta * bias).astype(np.float32))
        )
        return [gemm.to_node()]

    y = gemm.output
    gemm = gemm.replace(output=graph.unique_name(f"{y}_before_C"))
    graph.set_type(gemm.output, FLOAT, graph.shape(y))
    nodes = [gemm.to_node()]
    scaled_c = _scaled(graph, base, c, c_value, beta, nodes)
    nodes.append(
        helper.make_node(
            "Add", [gemm.output, scaled_c], [y], name=graph.unique_name(f"{base}_AddC")
        )
    )
    return nodes


def _scaled(
    graph: Graph, base: str, c: str, c_value: np.ndarray | None, beta: float, nodes: list
) -> str:
    """beta * C: C itself when beta is 1, a new initializer when C is constant, else a Mul
    (appended to ``nodes``)."""
    if beta == 1.0:
        return c
    if c_value is not None:
        return graph.add_initializer(f"{base}.beta_C", (beta * c_value).astype(np.float32))
    beta_name = graph.add_initializer(f"{base}.beta", np.array(beta, dtype=np.float32))
    output = graph.unique_name(f"{base}_beta_C")
    nodes.append(
        helper.make_node("Mul", [c, beta_name], [output], name=graph.unique_name(f"{base}_ScaleC"))
    )
    graph.set_type(output, FLOAT, graph.shape(c))
    return output
