"""SparseConv -> LeakyRelu  ->  SparseConv(activation=leaky_relu, alpha).

SparseGemm's kernel has no leaky_relu, so ActivationRule leaves a LeakyRelu after it alone.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.fusion import SingleOpActivationRule
from ortsparse.rewriter.graph import attribute_values
from ortsparse.rewriter.sparse_op import LEAKY_RELU_DEFAULT_ALPHA, Activation


class FuseLeakyRelu(SingleOpActivationRule):
    label = op_type = "LeakyRelu"
    activation = "leaky_relu"

    def activation_of(self, node: onnx.NodeProto) -> Activation:
        alpha = attribute_values(node).get("alpha", LEAKY_RELU_DEFAULT_ALPHA)
        return Activation(self.activation, alpha=alpha)
