"""SparseGemm -> x * Sigmoid(x)  ->  SparseGemm(activation=silu)."""

from ortsparse.rewriter.fusion import PatternActivationRule
from ortsparse.rewriter.pattern import Op, Var

X = Var("x")


class FuseSilu(PatternActivationRule):
    label = "SiLU"
    activation = "silu"
    patterns = (Op("Mul", X, Op("Sigmoid", X)),)
