"""SparseGemm/SparseConv -> Relu  ->  same op(activation=relu)."""

from ortsparse.rewriter.fusion import SingleOpActivationRule


class FuseRelu(SingleOpActivationRule):
    label = op_type = "Relu"
    activation = "relu"
