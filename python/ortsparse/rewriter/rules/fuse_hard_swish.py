"""SparseConv -> HardSwish-14, or x * HardSigmoid(x; alpha=1/6, beta=0.5)  ->
SparseConv(activation=hard_swish).

HardSwish(x) = x * max(0, min(1, x / 6 + 0.5)); exporters targeting opsets before 14 write it as
the product with HardSigmoid. SparseGemm's kernel has no hard_swish, so ActivationRule leaves
either form after a SparseGemm alone.
"""

from __future__ import annotations

from ortsparse.rewriter.fusion import PatternActivationRule, SingleOpActivationRule
from ortsparse.rewriter.graph import attribute_values
from ortsparse.rewriter.pattern import CONSTANT_TOLERANCE, Op, Var

X = Var("x")

_HARD_SWISH_GATE = {"alpha": 1.0 / 6.0, "beta": 0.5}
_HARD_SIGMOID_DEFAULTS = {"alpha": 0.2, "beta": 0.5}  # ONNX's, for attributes left out


class FuseHardSwish(SingleOpActivationRule):
    label = op_type = "HardSwish"
    activation = "hard_swish"


class FuseXTimesHardSigmoid(PatternActivationRule):
    label = "HardSwish"
    activation = "hard_swish"
    patterns = (Op("Mul", X, Op("HardSigmoid", X)),)

    def find_activation(self, graph, op):
        found = super().find_activation(graph, op)
        if found is None:
            return None
        nodes, _ = found
        hard_sigmoid = next(node for node in nodes if node.op_type == "HardSigmoid")
        attributes = {**_HARD_SIGMOID_DEFAULTS, **attribute_values(hard_sigmoid)}
        if any(
            abs(attributes[name] - value) > CONSTANT_TOLERANCE
            for name, value in _HARD_SWISH_GATE.items()
        ):
            return None
        return found
