"""What the MatMul and Gemm conversion rules share: the rule interface, weight checks, packing a
weight into initializers, and the Decision for a node that stays as it is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import onnx

from ortsparse.rewriter.decisions import NO_FORMAT, Decision
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.packing import pack
from ortsparse.rewriter.policy import SparsityPolicy, Verdict
from ortsparse.rewriter.sparse_gemm import SparseGemm


@dataclass(frozen=True)
class Conversion:
    decision: Decision
    sparse_gemm: str = ""  # name of the SparseGemm node that replaced the node, if any


class ConversionRule(ABC):
    op_type: str  # the default-domain op this rule converts

    @abstractmethod
    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        """Replaces ``node`` by a SparseGemm when eligible and worth it; says what and why."""


def display_name(node: onnx.NodeProto) -> str:
    """The node's name, or its output's for the unnamed nodes some exporters write."""
    return node.name or node.output[0]


@dataclass(frozen=True)
class ConstantWeight:
    value: np.ndarray | None  # float32 [rows, cols], None when unusable
    problem: str  # why it is unusable ("" when usable)


def constant_weight(graph: Graph, name: str) -> ConstantWeight:
    value = graph.constant(name)
    if value is None:
        return ConstantWeight(None, "weight is not a constant")
    if value.ndim != 2:
        return ConstantWeight(None, f"weight is {value.ndim}-D, SparseGemm takes a 2-D weight")
    if value.dtype != np.float32:
        return ConstantWeight(None, f"weight is {value.dtype}, SparseGemm takes float32")
    if value.size == 0:
        return ConstantWeight(None, "weight is empty")
    return ConstantWeight(value, "")


def static_weight_shape(
    graph: Graph, name: str, transposed: bool = False
) -> tuple[int, int] | None:
    """(K, N) from the weight's inferred type, for the report of a weight that is not a constant."""
    shape = graph.shape(name)
    if shape is None or len(shape) != 2 or not all(isinstance(dim, int) for dim in shape):
        return None
    return (shape[1], shape[0]) if transposed else (shape[0], shape[1])


def kept(node: onnx.NodeProto, reason: str, weight_shape=None, sparsity=None) -> Conversion:
    return Conversion(
        Decision(display_name(node), node.op_type, weight_shape, sparsity, NO_FORMAT, False, reason)
    )


def rewritten(node: onnx.NodeProto, gemm: SparseGemm, verdict: Verdict) -> Conversion:
    shape = (gemm.k, gemm.n)
    decision = Decision(
        display_name(node), node.op_type, shape, verdict.sparsity, gemm.format, True, verdict.reason
    )
    return Conversion(decision, gemm.name)


def packed_sparse_gemm(
    graph: Graph, node: onnx.NodeProto, x: str, weight: np.ndarray, format: str, output: str
) -> SparseGemm:
    """A SparseGemm computing ``x`` · ``weight`` into ``output``, its weight packed into new
    initializers; named after ``node``."""
    base = display_name(node)
    packed = pack(weight, format)
    return SparseGemm(
        name=graph.unique_name(f"{base}_SparseGemm"),
        x=x,
        weight_values=graph.add_initializer(f"{base}.weight_values", packed.values),
        weight_group_offsets=graph.add_initializer(
            f"{base}.weight_group_offsets", packed.group_offsets
        ),
        weight_input_indices=graph.add_initializer(
            f"{base}.weight_input_indices", packed.input_indices
        ),
        k=packed.k,
        n=packed.n,
        format=format,
        output=output,
    )
