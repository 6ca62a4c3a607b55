"""SparseConv -> Reshape [B, A, P, OH, OW] -> Transpose [0, 1, 3, 4, 2]  ->
SparseConv(output_channel_groups=A), whose Y is that transpose, [B, A, OH, OW, P].

The 4-D form, Reshape [B, A, P, OH * OW] -> Transpose [0, 1, 3, 2], becomes the same SparseConv
and a Reshape of its Y to [B, A, OH * OW, P], which moves no data.

Detection heads (YOLOv5's Detect) reshape and transpose each scale's conv output this way, so that
each anchor's predictions lie together: ORT's Transpose is then a strided copy of the whole
output, which SparseConv's output stage does instead while it writes Y. The bias, BatchNormalization
and residual fusions assume channels on axis 1 and do not apply after this one; activations do.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.fusion import (
    EpilogueRule,
    Fusion,
    sole_consumer_of_type,
    sole_default_consumer,
)
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_op import SparseOp

_PERMS = {5: [0, 1, 3, 4, 2], 4: [0, 1, 3, 2]}


class FuseChannelGroupsLast(EpilogueRule):
    label = "Reshape+Transpose (channel groups last)"

    def match(self, graph: Graph, op: SparseOp) -> Fusion | None:
        if not isinstance(op, SparseConv) or not op.channels_on_axis() or op.residual:
            return None
        y_shape = graph.shape(op.output)
        reshape = sole_consumer_of_type(graph, op, "Reshape")
        if y_shape is None or len(y_shape) != 4 or reshape is None or reshape.input[0] != op.output:
            return None
        transpose = sole_default_consumer(graph, reshape.output[0], "Transpose")
        grouped = _grouped_dims(graph, reshape, y_shape, op.n)
        if transpose is None or grouped is None:
            return None
        if attribute_values(transpose).get("perm") != _PERMS.get(1 + len(grouped)):
            return None
        batch, _, height, width = y_shape
        groups, group_channels = grouped[:2]
        # _grouped_dims keeps the element count, so with the pixels last A * P is N.
        if grouped[2:] not in ((height, width), (height * width,)):
            return None
        if len(grouped) == 4:
            fused = op.replace(output_channel_groups=groups, output=transpose.output[0])
            return Fusion((reshape, transpose), fused)
        grouped_y = graph.unique_name(f"{transpose.output[0]}_channel_groups_last")
        graph.set_type(
            grouped_y, onnx.TensorProto.FLOAT, (batch, groups, height, width, group_channels)
        )
        rows_shape = graph.add_initializer(
            f"{transpose.name}_rows_shape",
            np.array([0, groups, height * width, group_channels], dtype=np.int64),
        )
        flatten_pixels = helper.make_node(
            "Reshape",
            [grouped_y, rows_shape],
            [transpose.output[0]],
            name=graph.unique_name(f"{transpose.name}_pixels"),
        )
        fused = op.replace(output_channel_groups=groups, output=grouped_y)
        return Fusion((reshape, transpose), fused, after=(flatten_pixels,))


def _grouped_dims(
    graph: Graph, reshape: onnx.NodeProto, y_shape: tuple, channels: int
) -> tuple[int, ...] | None:
    """The dims after the batch that ``reshape`` gives Y [B, N, OH, OW] (static OH, OW), its -1
    resolved, when its target is constant and keeps the batch (0, or B when static); else None."""
    height, width = y_shape[2:]
    target = graph.constant(reshape.input[1])
    if not isinstance(height, int) or not isinstance(width, int) or target is None:
        return None
    if target.ndim != 1 or len(target) < 2 or attribute_values(reshape).get("allowzero", 0):
        return None
    batch, *dims = (int(dim) for dim in target)
    if batch != 0 and batch != y_shape[0]:
        return None
    # A 0 past the batch would copy one of Y's dims by position: not a form exporters write.
    if dims.count(-1) > 1 or any(dim == 0 or dim < -1 for dim in dims):
        return None
    elements = channels * height * width
    known = int(np.prod([dim for dim in dims if dim != -1]))
    if -1 in dims:
        if elements % known:
            return None
        dims[dims.index(-1)] = elements // known
    return tuple(dims) if int(np.prod(dims)) == elements else None
