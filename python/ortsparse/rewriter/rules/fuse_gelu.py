"""SparseGemm/SparseConv -> Gelu-20  ->  same op(activation=gelu), or gelu_tanh for
approximate="tanh"."""

from __future__ import annotations

from ortsparse.rewriter.fusion import ActivationRule, sole_consumer_of_type
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.sparse_op import Activation, SparseOp

_ACTIVATION_FOR_APPROXIMATION = {"none": "gelu", "tanh": "gelu_tanh"}


class FuseGelu(ActivationRule):
    label = "Gelu"

    def find_activation(self, graph: Graph, op: SparseOp):
        gelu = sole_consumer_of_type(graph, op, "Gelu")
        if gelu is None or list(gelu.input) != [op.output]:
            return None
        approximation = attribute_values(gelu).get("approximate", b"none").decode()
        if approximation not in _ACTIVATION_FOR_APPROXIMATION:
            return None
        return [gelu], Activation(_ACTIVATION_FOR_APPROXIMATION[approximation])
