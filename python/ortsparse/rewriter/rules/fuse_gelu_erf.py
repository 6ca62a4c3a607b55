"""SparseGemm/SparseConv -> 0.5 * x * (1 + Erf(x / sqrt(2)))  ->  same op(activation=gelu).

The exact Gelu as PyTorch and Hugging Face exports write it before opset 20: x / sqrt(2) as a Div
by 1.4142135 or a Mul by 0.70710678, and the 0.5 multiplying x, the (1 + erf) factor or the
product. Every constant must equal its exact value to within CONSTANT_TOLERANCE.
"""

from __future__ import annotations

import math

from ortsparse.rewriter.fusion import PatternActivationRule
from ortsparse.rewriter.pattern import Const, Op, Pattern, Var

X = Var("x")


def half_times_x_times(factor: Pattern) -> tuple[Op, ...]:
    """0.5 * x * factor, with the 0.5 multiplying x, the factor, or their product."""
    return (
        Op("Mul", Op("Mul", X, Const(0.5)), factor),
        Op("Mul", Op("Mul", X, factor), Const(0.5)),
        Op("Mul", X, Op("Mul", factor, Const(0.5))),
    )


_X_OVER_SQRT2 = (Op("Div", X, Const(math.sqrt(2.0))), Op("Mul", X, Const(1.0 / math.sqrt(2.0))))


class FuseGeluErf(PatternActivationRule):
    label = "Gelu(erf)"
    activation = "gelu"
    patterns = tuple(
        pattern
        for x_over_sqrt2 in _X_OVER_SQRT2
        for pattern in half_times_x_times(Op("Add", Op("Erf", x_over_sqrt2), Const(1.0)))
    )
