"""SparseGemm/SparseConv -> com.microsoft Gelu  ->  same op(activation=gelu); -> com.microsoft
FastGelu without a bias input  ->  same op(activation=gelu_tanh).

ONNX Runtime's optimizer (and exporters targeting ORT) write GELU as these contrib ops: Gelu is
the exact one, x * (1 + erf(x / sqrt(2))) / 2, FastGelu the tanh approximation.
"""

from __future__ import annotations

from ortsparse.rewriter.contrib_shapes import MS_DOMAIN
from ortsparse.rewriter.fusion import ActivationRule
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_op import Activation, SparseOp

_ACTIVATION_OF = {"Gelu": "gelu", "FastGelu": "gelu_tanh"}


class FuseContribGelu(ActivationRule):
    label = "Gelu (com.microsoft)"

    def find_activation(self, graph: Graph, op: SparseOp):
        node = graph.sole_consumer(op.output)
        if node is None or node.domain != MS_DOMAIN or node.op_type not in _ACTIVATION_OF:
            return None
        if list(node.input) != [op.output]:  # FastGelu's bias input, or anything else
            return None
        return [node], Activation(_ACTIVATION_OF[node.op_type])
