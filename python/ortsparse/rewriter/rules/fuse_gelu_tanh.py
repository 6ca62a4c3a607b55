"""SparseGemm/SparseConv -> 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))  ->
same op(activation=gelu_tanh).

The tanh approximation of Gelu as exported by PyTorch (approximate="tanh") and Hugging Face
(gelu_new, GPT-2): x^3 as Pow(x, 3) or x * x * x, and the 0.5 anywhere in the outer product.
"""

from __future__ import annotations

import math

from ortsparse.rewriter.fusion import PatternActivationRule
from ortsparse.rewriter.pattern import Const, Op, Var
from ortsparse.rewriter.rules.fuse_gelu_erf import half_times_x_times

X = Var("x")

_X_CUBED = (Op("Pow", X, Const(3.0)), Op("Mul", X, Op("Mul", X, X)))


def _one_plus_tanh(x_cubed: Op) -> Op:
    inner = Op("Add", X, Op("Mul", x_cubed, Const(0.044715)))
    return Op("Add", Op("Tanh", Op("Mul", inner, Const(math.sqrt(2.0 / math.pi)))), Const(1.0))


class FuseGeluTanh(PatternActivationRule):
    label = "Gelu(tanh)"
    activation = "gelu_tanh"
    patterns = tuple(
        pattern for x_cubed in _X_CUBED for pattern in half_times_x_times(_one_plus_tanh(x_cubed))
    )
