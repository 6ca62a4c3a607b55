"""Softmax along an axis that is not the last  ->  e / ReduceSum(e), e = Exp(x - ReduceMax(x)),
both reductions along that axis, keeping its dim.

ORT's Softmax (opset 13 on) moves any other axis last with a Transpose of the whole tensor and
back with another; reductions along the axis in place read the tensor once each, contiguous
along the dims after it. YOLOv8's distribution-focal head takes a Softmax over axis 1 of
[batch, 16, 4, anchors], the slowest node of the model on ORT (docs/performance.md). The same
arithmetic as ORT's: subtract the maximum, exponentiate, divide by the sum. Only from opset 13
(before it, Softmax's axis flattened every dim after it into one), on float tensors of known
rank with more than one element after the axis.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

from ortsparse.rewriter.fusion import OrtNodeRule
from ortsparse.rewriter.graph import Graph, attribute_values, default_opset, is_default_domain

_AXIS_ALONE_SINCE = 13
# ReduceMax takes its axes as an input from this opset on (ReduceSum from 13).
_REDUCE_MAX_AXES_AS_INPUT_SINCE = 18


class SoftmaxAsReductions(OrtNodeRule):
    label = "Softmax as reductions along its axis"

    def applies_to(self, graph: Graph) -> bool:
        return default_opset(graph.model) >= _AXIS_ALONE_SINCE

    def rewrite(self, graph: Graph, node: onnx.NodeProto) -> None:
        axis = _leading_axis(graph, node)
        if axis is None:
            return
        x, y = node.input[0], node.output[0]
        axes = graph.add_initializer(f"{y}_axes", np.array([axis], np.int64))
        peak, shifted, exp, total = (
            graph.unique_name(f"{y}_{part}") for part in ("max", "shifted", "exp", "sum")
        )
        if default_opset(graph.model) >= _REDUCE_MAX_AXES_AS_INPUT_SINCE:
            reduce_max = helper.make_node("ReduceMax", [x, axes], [peak], keepdims=1)
        else:
            reduce_max = helper.make_node("ReduceMax", [x], [peak], axes=[axis], keepdims=1)
        graph.replace(
            [node],
            [
                reduce_max,
                helper.make_node("Sub", [x, peak], [shifted]),
                helper.make_node("Exp", [shifted], [exp]),
                helper.make_node("ReduceSum", [exp, axes], [total], keepdims=1),
                helper.make_node("Div", [exp, total], [y]),
            ],
        )


def _leading_axis(graph: Graph, node: onnx.NodeProto) -> int | None:
    """The axis of Softmax ``node``, counted from 0, where it is not the last one that matters
    (dims after it of more than one element in all); None for anything else."""
    if node.op_type != "Softmax" or not is_default_domain(node):
        return None
    shape = graph.shape(node.input[0])
    if shape is None or graph.elem_type(node.input[0]) != TensorProto.FLOAT:
        return None
    axis = attribute_values(node).get("axis", -1)
    axis = axis + len(shape) if axis < 0 else axis
    if not 0 <= axis < len(shape) - 1:
        return None
    after = shape[axis + 1 :]
    if all(isinstance(dim, int) for dim in after) and math.prod(after) <= 1:
        return None
    return axis
