"""Matches small expression trees (e.g. the erf form of Gelu) against the graph.

A pattern is built from ``Op`` (a node of the default domain), ``Var`` (any tensor, the same one
wherever the variable recurs) and ``Const`` (a one-element constant equal to a value). Add and Mul
match either operand order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import onnx

from ortsparse.rewriter.graph import Graph, is_default_domain

# How far a matched constant may be from the pattern's: float32 rounding of constants like sqrt(2)
# is ~1e-7, while a different constant (1.414 for sqrt(2)) is off by far more.
CONSTANT_TOLERANCE = 1e-6

_COMMUTATIVE = {"Add", "Mul"}


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Op:
    op_type: str
    inputs: tuple[Pattern, ...]

    def __init__(self, op_type: str, *inputs: Pattern):
        object.__setattr__(self, "op_type", op_type)
        object.__setattr__(self, "inputs", inputs)


Pattern = Union[Var, Const, Op]


@dataclass(frozen=True)
class Match:
    nodes: tuple[onnx.NodeProto, ...]  # every node the pattern's Ops matched, root last
    bindings: dict[str, str]  # Var name -> tensor name


def match_node(
    graph: Graph, pattern: Op, root: onnx.NodeProto, bindings: dict[str, str], max_rank: int
) -> Match | None:
    """Matches ``pattern`` with ``root`` as its top node, given pre-bound variables.

    Constants must have at most ``max_rank`` dims, so broadcasting them cannot grow the result.
    """
    for nodes, final_bindings in _match_op(graph, pattern, root, dict(bindings), max_rank):
        # A node that two branches of the pattern share counts once.
        unique_nodes = {id(node): node for node in nodes}
        return Match(tuple(unique_nodes.values()), final_bindings)
    return None


def _match_tensor(graph, pattern, tensor, bindings, max_rank):
    """Yields (matched nodes, bindings) for every way ``tensor`` matches ``pattern``."""
    if isinstance(pattern, Var):
        bound = bindings.get(pattern.name)
        if bound is None:
            yield [], {**bindings, pattern.name: tensor}
        elif bound == tensor:
            yield [], bindings
    elif isinstance(pattern, Const):
        if _is_scalar_constant(graph.constant(tensor), pattern.value, max_rank):
            yield [], bindings
    else:
        producer = graph.producer(tensor)
        if producer is not None:
            yield from _match_op(graph, pattern, producer, bindings, max_rank)


def _match_op(graph, pattern: Op, node, bindings, max_rank):
    if node.op_type != pattern.op_type or not is_default_domain(node):
        return
    if len(node.input) != len(pattern.inputs) or len(node.output) != 1:
        return
    orders = [pattern.inputs]
    if pattern.op_type in _COMMUTATIVE:
        orders.append(pattern.inputs[::-1])
    for ordered in orders:
        for nodes, final_bindings in _match_inputs(
            graph, ordered, list(node.input), bindings, max_rank
        ):
            yield [*nodes, node], final_bindings


def _match_inputs(graph, patterns, tensors, bindings, max_rank):
    if not patterns:
        yield [], bindings
        return
    for first_nodes, first_bindings in _match_tensor(
        graph, patterns[0], tensors[0], bindings, max_rank
    ):
        for rest_nodes, rest_bindings in _match_inputs(
            graph, patterns[1:], tensors[1:], first_bindings, max_rank
        ):
            yield [*first_nodes, *rest_nodes], rest_bindings


def _is_scalar_constant(value: np.ndarray | None, expected: float, max_rank: int) -> bool:
    return (
        value is not None
        and value.size == 1
        and value.ndim <= max_rank
        and np.issubdtype(value.dtype, np.number)
        and abs(float(value.reshape(-1)[0]) - expected) <= CONSTANT_TOLERANCE
    )
