"""What the MatMul, Gemm and Conv conversion rules share: the rule interface, weight checks,
packing a weight into initializers, and the Decision for a node that stays as it is."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import onnx

from ortsparse.rewriter.decisions import NO_FORMAT, Decision, Refusal
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.packing import pack
from ortsparse.rewriter.policy import SparsityPolicy, Verdict
from ortsparse.rewriter.sparse_op import SparseOp


@dataclass(frozen=True)
class Conversion:
    decision: Decision
    sparse_node: str = ""  # name of the node (SparseGemm, SparseConv, SparseQGemm) replacing it


class ConversionRule(ABC):
    op_type: str  # the op this rule converts
    domain: str = ""  # its domain, "" for ONNX's own

    def converts(self, node: onnx.NodeProto) -> bool:
        """Whether ``node`` is of the op this rule converts."""
        domain = "" if node.domain == "ai.onnx" else node.domain
        return node.op_type == self.op_type and domain == self.domain

    def applies_to(self, graph: Graph, node: onnx.NodeProto) -> bool:
        """Whether this rule, rather than a later one for the same op type, handles ``node``."""
        return True

    @abstractmethod
    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        """Replaces ``node`` by a sparse op when eligible and worth it; says what and why."""


def display_name(node: onnx.NodeProto) -> str:
    """The node's name, or its output's for the unnamed nodes some exporters write."""
    return node.name or node.output[0]


@dataclass(frozen=True)
class ConstantWeight:
    value: np.ndarray | None  # float32 of the rank asked for, None when unusable
    problem: str  # why it is unusable ("" when usable)


def constant_weight(
    graph: Graph, name: str, rank: int = 2, op_type: str = "SparseGemm"
) -> ConstantWeight:
    """The weight ``name`` when it is a non-empty float32 constant of ``rank`` dims, as
    ``op_type`` takes it."""
    value = graph.constant(name)
    if value is None:
        return ConstantWeight(None, "weight is not a constant")
    if value.ndim != rank:
        return ConstantWeight(None, f"weight is {value.ndim}-D, {op_type} takes a {rank}-D weight")
    if value.dtype != np.float32:
        return ConstantWeight(None, f"weight is {value.dtype}, {op_type} takes float32")
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


def kept(
    node: onnx.NodeProto, reason: str | Refusal, weight_shape=None, sparsity=None
) -> Conversion:
    decision = Decision(
        display_name(node), node.op_type, weight_shape, sparsity, NO_FORMAT, False, str(reason)
    )
    return Conversion(decision)


def rewritten(node: onnx.NodeProto, sparse_op: SparseOp, verdict: Verdict) -> Conversion:
    shape = (sparse_op.k, sparse_op.n)
    decision = Decision(
        display_name(node),
        node.op_type,
        shape,
        verdict.sparsity,
        sparse_op.format,
        True,
        verdict.reason,
    )
    return Conversion(decision, sparse_op.name)


def replaced_by(
    graph: Graph,
    node: onnx.NodeProto,
    replaced: list[onnx.NodeProto],
    sparse_node: onnx.NodeProto,
    weight_shape: tuple[int, int],
    verdict: Verdict,
) -> Conversion:
    """Replaces ``replaced`` (``node`` among them) by ``sparse_node``, an op no SparseOp value
    describes (the INT8 ones, which take no epilogue), and reports it."""
    graph.replace(replaced, [sparse_node])
    decision = Decision(
        display_name(node),
        node.op_type,
        weight_shape,
        verdict.sparsity,
        verdict.format,
        True,
        verdict.reason,
    )
    return Conversion(decision, sparse_node.name)


def packed_sparse_op(
    op_class: type[SparseOp],
    graph: Graph,
    node: onnx.NodeProto,
    x: str,
    weight: np.ndarray,
    format: str,
    output: str,
    **op_fields,
) -> SparseOp:
    """An ``op_class`` node reading ``x`` with the [K, N] ``weight`` packed into new initializers,
    writing ``output``; named after ``node``. ``op_fields`` are the op's own fields (e.g. the
    convolution's geometry)."""
    base = display_name(node)
    packed = pack(weight, format)
    return op_class(
        name=graph.unique_name(f"{base}_{op_class.OP_TYPE}"),
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
        **op_fields,
    )
