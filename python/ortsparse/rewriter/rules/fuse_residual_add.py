"""SparseGemm/SparseConv -> Add(non-constant R of exactly the output's static shape)  ->  same op
(residual).

Before an activation the residual joins the pre-activation sum (residual_before_activation=1,
set when the activation fuses); after one it is added last (0). Shapes must match statically
(same numbers, same symbols) because the kernel does not broadcast the residual.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.fusion import (
    EpilogueRule,
    Fusion,
    other_operand,
    same_static_shape,
    sole_consumer_of_type,
)
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.sparse_op import SparseOp


class FuseResidualAdd(EpilogueRule):
    label = "Add"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if op.residual or not op.channels_on_axis():  # SparseConv takes none with channels last
            return None
        add = sole_consumer_of_type(graph, op, "Add")
        residual = other_operand(add, op.output) if add is not None else None
        if residual is None or graph.constant(residual) is not None:
            return None
        if graph.elem_type(residual) != onnx.TensorProto.FLOAT:
            return None
        if not same_static_shape(graph.shape(residual), graph.shape(op.output)):
            return None
        return Fusion((add,), op.replace(residual=residual, output=add.output[0]))
