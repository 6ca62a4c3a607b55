"""SparseConv -> x * Clip(x + 3, 0, 6) / 6  ->  SparseConv(activation=hard_swish).

HardSwish as PaddlePaddle's ONNX exporter writes it (PP-OCR, PP-LCNet): four nodes, the Add, the
Clip with its bounds as inputs, the product with x and the division by 6 (or a Mul by 1/6) in
either order. ORT fuses none of them, so each of those models' convolutions is followed by four
elementwise ops; fused, they are the epilogue's hard_swish. Every constant must equal its value
to within CONSTANT_TOLERANCE.
"""

from __future__ import annotations

from ortsparse.rewriter.fusion import PatternActivationRule
from ortsparse.rewriter.pattern import Const, Op, Var

X = Var("x")
_RELU6_OF_X_PLUS_3 = Op("Clip", Op("Add", X, Const(3.0)), Const(0.0), Const(6.0))


class FuseHardSwishClip(PatternActivationRule):
    label = "HardSwish(Clip)"
    activation = "hard_swish"
    patterns = (
        Op("Div", Op("Mul", X, _RELU6_OF_X_PLUS_3), Const(6.0)),
        Op("Mul", Op("Mul", X, _RELU6_OF_X_PLUS_3), Const(1.0 / 6.0)),
        Op("Mul", X, Op("Div", _RELU6_OF_X_PLUS_3, Const(6.0))),
        Op("Mul", X, Op("Mul", _RELU6_OF_X_PLUS_3, Const(1.0 / 6.0))),
    )
