"""SparseGemm/SparseConv -> com.microsoft Gelu  ->  same op(activation=gelu); -> com.microsoft
FastGelu  ->  same op(activation=gelu_tanh); -> com.microsoft BiasGelu(., bias)  ->  same
op(bias, activation=gelu), FastGelu's bias input likewise.

ONNX Runtime's optimizer (and exporters targeting ORT) write GELU as these contrib ops: Gelu is
the exact one, x * (1 + erf(x / sqrt(2))) / 2, FastGelu the tanh approximation; BiasGelu and
FastGelu with a bias add a constant [N] first, the Add of the MatMul before them folded in.
"""

from __future__ import annotations

import numpy as np

from ortsparse.rewriter.contrib_shapes import MS_DOMAIN
from ortsparse.rewriter.fusion import EpilogueRule, Fusion
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_op import NO_ACTIVATION, Activation, SparseOp

_ACTIVATION_OF = {"Gelu": "gelu", "FastGelu": "gelu_tanh", "BiasGelu": "gelu"}


class FuseContribGelu(EpilogueRule):
    label = "Gelu (com.microsoft)"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if op.activation.name != NO_ACTIVATION:
            return None
        node = graph.sole_consumer(op.output)
        if node is None or node.domain != MS_DOMAIN or node.op_type not in _ACTIVATION_OF:
            return None
        activation = Activation(_ACTIVATION_OF[node.op_type])
        if activation.name not in op.ACTIVATIONS or node.input[0] != op.output:
            return None
        extra_inputs = [name for name in node.input[1:] if name]
        if not extra_inputs:
            bias = op.bias
        elif node.op_type == "Gelu" or len(extra_inputs) > 1 or op.output in extra_inputs:
            return None
        else:
            bias = self._summed_bias(graph, op, extra_inputs[0])
            if bias is None:
                return None
        fused = op.replace(
            bias=bias,
            activation=activation,
            output=node.output[0],
            residual_before_activation=bool(op.residual),
        )
        return Fusion((node,), fused)

    @staticmethod
    def _summed_bias(graph: Graph, op: SparseOp, name: str) -> str | None:
        """The op's bias plus the constant [N] ``name`` as a new initializer, None where
        ``name`` is no such constant."""
        value = graph.constant(name)
        if value is None or value.shape != (op.n,) or not op.channels_on_axis():
            return None
        shape = graph.shape(op.output)
        added = op.bias_from(value, output_rank=len(shape)) if shape is not None else None
        if added is None:
            return None
        if op.bias:
            added = added + graph.constant(op.bias)
        return graph.add_initializer(f"{op.name}.bias", added.astype(np.float32))
