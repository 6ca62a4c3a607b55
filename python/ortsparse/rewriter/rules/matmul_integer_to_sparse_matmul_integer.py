"""MatMulInteger(A, constant int8 B, A_zp, B_zp = 0) -> SparseMatMulInteger(A, packed B, A_zp).

Dynamic quantization (ORT's ``quantize_dynamic``) writes MatMul as DynamicQuantizeLinear ->
MatMulInteger -> Cast -> Mul by the scales: the int32 product is the part worth a sparse kernel,
and what follows it stays with ORT."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    display_name,
    kept,
    replaced_by,
)
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_matmul_integer import sparse_matmul_integer_node

ACTIVATION_TYPES = (TensorProto.UINT8, TensorProto.INT8)


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
        if b_zero_point:
            zero_point = graph.constant(b_zero_point)
            if zero_point is None:
                return kept(node, "weight zero point is not a constant", weight_shape)
            if np.any(zero_point != 0):
                # The pruned zeros would then stand for -zero_point: the weight is not sparse.
                return kept(node, "weight zero point is not 0", weight_shape)
        if graph.elem_type(a) not in ACTIVATION_TYPES:
            return kept(node, "the activation is not known to be uint8 or int8", weight_shape)
        a_shape = graph.shape(a)
        if a_shape is None or len(a_shape) < 2:
            return kept(node, "the activation's rank is unknown or below 2", weight_shape)
        if a_zero_point:
            zero_point_shape = graph.shape(a_zero_point)
            if zero_point_shape is None or not all(isinstance(d, int) for d in zero_point_shape):
                return kept(node, "the activation zero point's shape is unknown", weight_shape)
            if math.prod(zero_point_shape) != 1:
                return kept(
                    node, "the activation zero point is per row, not per tensor", weight_shape
                )

        verdict = policy.judge_quantized(weight)
        if not verdict.rewrite:
            return kept(node, verdict.reason, weight_shape, verdict.sparsity)
        sparse_node = sparse_matmul_integer_node(
            graph, display_name(node), a, weight, a_zero_point, node.output[0]
        )
        return replaced_by(graph, node, [node], sparse_node, weight_shape, verdict)
