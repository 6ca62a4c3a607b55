"""SparseGemm/SparseConv -> Sigmoid  ->  same op(activation=sigmoid)."""

from ortsparse.rewriter.fusion import SingleOpActivationRule


class FuseSigmoid(SingleOpActivationRule):
    label = op_type = "Sigmoid"
    activation = "sigmoid"
