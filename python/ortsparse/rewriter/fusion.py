"""What the rules after conversion share: their interfaces (EpilogueRule, QuantizedEpilogueRule,
GraphRule) and the checks every fusion must pass.

A fusion folds nodes that consume a SparseGemm's or SparseConv's output into the op's epilogue
(bias, activation, residual). It is only sound when nothing else reads the tensors that disappear,
so a rule matches only chains whose intermediate tensors have no other reader and are not graph
outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.packing import PackedWeight
from ortsparse.rewriter.pattern import Op, match_node
from ortsparse.rewriter.sparse_op import NO_ACTIVATION, Activation, SparseOp, along_channels


@dataclass(frozen=True)
class Fusion:
    """Fold ``absorbed`` into the sparse op, which becomes ``fused`` and takes over the output
    of the last absorbed node, unless nodes ``after`` it compute that output from the op's."""

    absorbed: tuple[onnx.NodeProto, ...]
    fused: SparseOp
    after: tuple[onnx.NodeProto, ...] = ()


@dataclass(frozen=True)
class QuantizedFusion:
    """Fold ``absorbed`` into a quantized sparse op (SparseQConv), whose node becomes ``fused``
    and takes over the output of the last absorbed node."""

    absorbed: tuple[onnx.NodeProto, ...]
    fused: onnx.NodeProto


class EpilogueRule(ABC):
    label: str  # what Decision.fused records for this rule

    @abstractmethod
    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        """The fusion of what follows ``op`` into it, or None when this rule does not apply."""


class QuantizedEpilogueRule(ABC):
    label: str  # what Decision.fused records for this rule

    @abstractmethod
    def match(self, graph: Graph, node: onnx.NodeProto) -> QuantizedFusion | None:
        """The fusion of what follows the INT8 op ``node`` into it, or None when this rule does
        not apply."""


class GraphRule(ABC):
    """A rule over the whole graph once every epilogue is fused, for what involves several nodes
    of the rewrite at once (a Concat that several of them read, two siblings to merge)."""

    label: str  # what Decision.fused records for this rule

    @abstractmethod
    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        """Edits the graph around the SparseGemm/SparseConv nodes named in ``ops`` (this
        rewrite's); returns (sparse node name, what it fused) for each node it changed."""


class OrtNodeRule(GraphRule):
    """A rewrite of ORT's own nodes, none of this rewrite's, into faster ones that compute the
    same. Only where the rewrite has ortsparse ops: verification then times the model as a
    whole, and a model it keeps as it is stays so."""

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        """Calls ``rewrite`` on each node where the rewrite has ortsparse ops (``ops``); names
        no op, as it changes none."""
        if ops and self.applies_to(graph):
            for node in list(graph.nodes):
                self.rewrite(graph, node)
        return []

    def applies_to(self, graph: Graph) -> bool:
        """Whether the model can hold what this rule writes (its opset, say)."""
        return True

    @abstractmethod
    def rewrite(self, graph: Graph, node: onnx.NodeProto) -> None:
        """Replaces the pattern ``node`` roots, if it roots one."""


def apply_fusion(graph: Graph, op_node: onnx.NodeProto, fusion: Fusion) -> None:
    graph.replace([op_node, *fusion.absorbed], [fusion.fused.to_node(), *fusion.after])


def sole_consumer_of_type(graph: Graph, op: SparseOp, op_type: str) -> onnx.NodeProto | None:
    """The default-domain node that alone reads the sparse op's output, if of ``op_type``."""
    return sole_default_consumer(graph, op.output, op_type)


def sole_default_consumer(graph: Graph, name: str, op_type: str) -> onnx.NodeProto | None:
    """The default-domain node that alone reads tensor ``name``, if of ``op_type``."""
    consumer = graph.sole_consumer(name)
    if consumer is None or consumer.op_type != op_type or not is_default_domain(consumer):
        return None
    return consumer


def other_operand(node: onnx.NodeProto, tensor: str) -> str | None:
    """The input of binary ``node`` other than ``tensor``; None unless ``tensor`` is exactly one."""
    if len(node.input) != 2 or list(node.input).count(tensor) != 1:
        return None
    return node.input[1] if node.input[0] == tensor else node.input[0]


def channel_constant(
    graph: Graph, node: onnx.NodeProto, x: str, channels: int, channel_axis: int, rank: int
) -> np.ndarray | None:
    """The other operand of binary ``node`` reading ``x`` (of ``rank`` dims, ``channels`` along
    ``channel_axis``) as [channels] float32, where it is a constant that broadcasts along that
    axis alone (sparse_op.along_channels, as a bias does); None otherwise."""
    other = other_operand(node, x)
    value = graph.constant(other) if other else None
    if value is None:
        return None
    return along_channels(value, channels, channel_axis, rank)


def packed_weight(graph: Graph, op: SparseOp) -> PackedWeight:
    """The op's packed weight, read from its constant inputs."""
    return PackedWeight(
        op.format,
        op.k,
        op.n,
        graph.constant(op.weight_values),
        graph.constant(op.weight_group_offsets),
        graph.constant(op.weight_input_indices),
    )


def same_static_shape(a: tuple | None, b: tuple | None) -> bool:
    """Both shapes known, equal, and without unknown dims (the kernels do not broadcast)."""
    return a is not None and a == b and all(dim is not None and dim != "" for dim in a)


class ActivationRule(EpilogueRule):
    """Fuses an activation the op's kernel has; any residual already fused was added before it."""

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if op.activation.name != NO_ACTIVATION:
            return None
        found = self.find_activation(graph, op)
        if found is None:
            return None
        absorbed, activation = found
        if activation.name not in op.ACTIVATIONS:
            return None
        fused = op.replace(
            activation=activation,
            output=absorbed[-1].output[0],
            residual_before_activation=bool(op.residual),
        )
        return Fusion(tuple(absorbed), fused)

    @abstractmethod
    def find_activation(
        self, graph: Graph, op: SparseOp
    ) -> tuple[Sequence[onnx.NodeProto], Activation] | None:
        """The nodes computing the activation of the op's output (root last), and which."""


class SingleOpActivationRule(ActivationRule):
    """An activation computed by one node reading only the sparse op's output."""

    op_type: str
    activation: str

    def find_activation(self, graph, op):
        node = sole_consumer_of_type(graph, op, self.op_type)
        if node is None or list(node.input) != [op.output]:
            return None
        return [node], self.activation_of(node)

    def activation_of(self, node: onnx.NodeProto) -> Activation:
        """The activation ``node`` computes (subclasses read its parameters from attributes)."""
        return Activation(self.activation)


class PatternActivationRule(ActivationRule):
    """An activation computed by a small subgraph of the sparse op's output, variable ``x``."""

    patterns: Sequence[Op]
    activation: str

    def find_activation(self, graph, op):
        shape = graph.shape(op.output)
        if shape is None:  # constants could not be checked to broadcast without growing the rank
            return None
        for root in _nodes_downstream(graph, op.output, depth=_MAX_PATTERN_DEPTH):
            for pattern in self.patterns:
                if root.op_type != pattern.op_type:
                    continue
                match = match_node(graph, pattern, root, {"x": op.output}, max_rank=len(shape))
                if match is not None and _only_pattern_reads_inside(graph, op.output, match.nodes):
                    return match.nodes, Activation(self.activation)
        return None


_MAX_PATTERN_DEPTH = 8


def _nodes_downstream(graph: Graph, tensor: str, depth: int) -> list[onnx.NodeProto]:
    """Nodes reachable from ``tensor`` in at most ``depth`` steps, nearest first."""
    found, seen, frontier = [], set(), [tensor]
    for _ in range(depth):
        next_frontier = []
        for name in frontier:
            for node in graph.consumers(name):
                if id(node) not in seen:
                    seen.add(id(node))
                    found.append(node)
                    next_frontier.extend(node.output)
        frontier = next_frontier
    return found


def _only_pattern_reads_inside(graph: Graph, x: str, nodes: Sequence[onnx.NodeProto]) -> bool:
    """True when ``x`` and every intermediate result of ``nodes`` (all but the root's output) are
    read by ``nodes`` alone, so replacing them by one node loses nothing."""
    intermediates = [x, *(output for node in nodes[:-1] for output in node.output)]
    return all(graph.used_only_by(name, nodes) for name in intermediates)
