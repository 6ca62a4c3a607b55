"""Sigmoid or Relu of a tensor that only moves SparseGemm/SparseConv outputs around (Reshape,
Transpose, Concat, Flatten, Squeeze, Unsqueeze)  ->  the activation fused into each of those ops.

An elementwise function commutes with moving elements: sigmoid(Concat(Reshape(y1), Reshape(y2)))
= Concat(Reshape(sigmoid(y1)), Reshape(sigmoid(y2))). YOLOv5-style detection heads take the
sigmoid after joining their scales' outputs; fused into the convs it costs nothing in their output
stage, instead of one more pass over the whole tensor.

Every tensor between the ops and the activation must be read only on that path (no other
consumer, not a graph output), and each op must have no activation yet; a residual it adds then
joins the sum before the activation, as when an activation fuses right after it.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.fusion import GraphRule
from ortsparse.rewriter.graph import Graph, is_default_domain
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import DOMAIN, NO_ACTIVATION, Activation, SparseOp

_ACTIVATIONS = {"Sigmoid": "sigmoid", "Relu": "relu"}
# Ops that move the elements of their first input (the others are shapes or axes); Concat joins
# all of its inputs.
_MOVES = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"}
_SPARSE_OPS = {op_class.OP_TYPE: op_class for op_class in (SparseGemm, SparseConv)}


class HoistActivationThroughLayout(GraphRule):
    label = "through Concat/Reshape/Transpose"

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        """Hoists every such activation into the sparse nodes named in ``ops`` (this rewrite's);
        returns (sparse node name, what it fused) for each op that took one."""
        hoisted = []
        for node in list(graph.nodes):
            if node.op_type not in _ACTIVATIONS or not is_default_domain(node):
                continue
            activation = Activation(_ACTIVATIONS[node.op_type])
            sources = _sparse_sources(graph, node.input[0], ops) if len(node.input) == 1 else None
            if not sources:
                continue
            for source in sources:
                op = _SPARSE_OPS[source.op_type].from_node(source)
                fused = op.replace(
                    activation=activation, residual_before_activation=bool(op.residual)
                )
                graph.replace([source], [fused.to_node()])
                hoisted.append((op.name, f"{node.op_type} ({self.label})"))
            last_move = graph.producer(node.input[0])
            renamed = onnx.NodeProto()
            renamed.CopyFrom(last_move)
            renamed.output[0] = node.output[0]
            graph.replace([last_move, node], [renamed])
        return hoisted


def _sparse_sources(graph: Graph, tensor: str, ops: set[str]) -> list[onnx.NodeProto] | None:
    """The SparseGemm/SparseConv nodes of ``ops`` whose outputs ``tensor`` only moves around,
    each without an activation and read only on the way to ``tensor``; None when it is anything
    else."""
    producer = graph.producer(tensor)
    if producer is None or graph.sole_consumer(tensor) is None:
        return None
    if producer.domain == DOMAIN and producer.op_type in _SPARSE_OPS and producer.name in ops:
        op: SparseOp = _SPARSE_OPS[producer.op_type].from_node(producer)
        return [producer] if op.activation.name == NO_ACTIVATION else None
    if not is_default_domain(producer) or len(producer.output) != 1:
        return None
    if producer.op_type == "Concat":
        data_inputs = dict.fromkeys(producer.input)  # Concat(y, y) reads y once
    elif producer.op_type in _MOVES:
        data_inputs = producer.input[:1]
    else:
        return None
    sources = []
    for data_input in data_inputs:
        found = _sparse_sources(graph, data_input, ops)
        if found is None:
            return None
        sources += found
    return sources
