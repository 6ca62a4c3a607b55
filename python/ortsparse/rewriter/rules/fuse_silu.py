"""SparseGemm/SparseConv -> x * Sigmoid(x) (SiLU, e.g. YOLOv5/v8)  ->  same op(activation=silu)."""

from ortsparse.rewriter.fusion import PatternActivationRule
from ortsparse.rewriter.pattern import Op, Var

X = Var("x")


class FuseSilu(PatternActivationRule):
    label = "SiLU"
    activation = "silu"
    patterns = (Op("Mul", X, Op("Sigmoid", X)),)
