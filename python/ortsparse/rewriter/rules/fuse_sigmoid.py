"""SparseGemm -> Sigmoid  ->  SparseGemm(activation=sigmoid)."""

from ortsparse.rewriter.fusion import SingleOpActivationRule


class FuseSigmoid(SingleOpActivationRule):
    label = op_type = "Sigmoid"
    activation = "sigmoid"
