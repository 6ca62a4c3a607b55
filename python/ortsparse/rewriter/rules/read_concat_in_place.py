"""Concat of NCHW tensors along the channels, read only as X by SparseConv nodes  ->  each of
them reading the Concat's inputs as X's parts (the Concat is gone).

YOLOv5's C3 blocks and its head join feature maps this way before a 1x1 conv. ORT's Concat
writes the joined map out (megabytes on the 160x160 and 80x80 maps) for the convs to read it
back; SparseConv instead packs each part's channels into its input planes itself, band by band
while they stay in L2 where the planes are large.

The Concat must have 2 to 4 inputs (X and SparseConv's 3 more parts at most) and rank-4 output
joined on axis 1, and every reader of its output must be a SparseConv of this rewrite reading it
as X only, with no parts yet; its output must not be a graph output.
"""

from __future__ import annotations

import onnx

from ortsparse.rewriter.fusion import GraphRule
from ortsparse.rewriter.graph import Graph, attribute_values, is_default_domain
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_op import DOMAIN


class ReadConcatInPlace(GraphRule):
    label = "Concat (its inputs read in place)"

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        """Moves every such Concat's inputs into the SparseConv nodes named in ``ops`` (this
        rewrite's) that read it; returns (sparse node name, what it fused) for each of them."""
        fused = []
        for concat in list(graph.nodes):
            readers = _readers(graph, concat, ops)
            if readers is None:
                continue
            first, *more = concat.input
            for reader in readers:
                op = SparseConv.from_node(reader)
                graph.replace([reader], [op.replace(x=first, x_parts=tuple(more)).to_node()])
                fused.append((op.name, self.label))
            graph.replace([concat], [])
        return fused


def _readers(graph: Graph, concat: onnx.NodeProto, ops: set[str]) -> list[onnx.NodeProto] | None:
    """The SparseConv nodes that may read ``concat``'s inputs in place instead of its output, or
    None when it is not such a Concat or something else reads its output."""
    if concat.op_type != "Concat" or not is_default_domain(concat):
        return None
    if not 2 <= len(concat.input) <= 1 + SparseConv.MAX_MORE_X_PARTS:
        return None
    joined = concat.output[0]
    shape = graph.shape(joined)
    if shape is None or len(shape) != 4 or attribute_values(concat).get("axis") not in (1, -3):
        return None
    readers = graph.consumers(joined)
    if not readers or not graph.used_only_by(joined, readers):
        return None
    for reader in readers:
        if reader.domain != DOMAIN or reader.op_type != SparseConv.OP_TYPE:
            return None
        if reader.name not in ops or list(reader.input).count(joined) != 1:
            return None
        op = SparseConv.from_node(reader)
        if op.x != joined or op.x_parts:
            return None
    return readers
