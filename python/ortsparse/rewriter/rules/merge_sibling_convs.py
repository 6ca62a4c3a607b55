"""Two SparseConv nodes of this rewrite that read the same X (and parts of X) through the same
window, with the same weight format and activation and no residual  ->  one SparseConv whose
output_split writes the first one's channels to Y and the second one's to Y_2.

YOLOv5's C3 blocks start with two 1x1 convs of their input (cv1 and cv2): merged, the input is
read once instead of twice, and each input vector serves both convs' weights, where the 1x1 layers
on the large maps are bound by reading it.

Nodes pair up in graph order; the merged node takes the first one's place, which comes after X's
producers, so both weights and biases must be constants.
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.fusion import GraphRule, packed_weight
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.packing import pack, unpack
from ortsparse.rewriter.sparse_conv import SparseConv, sparse_conv_of
from ortsparse.rewriter.sparse_op import OutputAffine


class MergeSiblingConvs(GraphRule):
    label = "sibling SparseConv reading the same X"

    def apply(self, graph: Graph, ops: set[str]) -> list[tuple[str, str]]:
        """Merges pairs of such SparseConv nodes among those named in ``ops`` (this rewrite's);
        returns (sparse node name, what it fused) for both of each pair."""
        siblings: dict[tuple, list[tuple[onnx.NodeProto, SparseConv]]] = {}
        for node in graph.nodes:
            op = _mergeable(graph, node, ops)
            if op is not None:
                siblings.setdefault(_sibling_key(op), []).append((node, op))
        merged = []
        for nodes in siblings.values():
            for (first, one), (second, two) in zip(nodes[0::2], nodes[1::2]):
                graph.replace([first], [_merge(graph, one, two).to_node()])
                graph.replace([second], [])
                merged += [
                    (one.name, f"{self.label} ({two.name})"),
                    (two.name, f"{self.label} ({one.name})"),
                ]
        return merged


def _mergeable(graph: Graph, node: onnx.NodeProto, ops: set[str]) -> SparseConv | None:
    op = sparse_conv_of(node, ops)
    if op is None or op.residual or op.output_channel_groups or op.output_split:
        return None
    constants = [op.weight_values, op.weight_group_offsets, op.weight_input_indices]
    if op.bias:
        constants.append(op.bias)
    if any(graph.constant(name) is None for name in constants):
        return None
    return op


def _sibling_key(op: SparseConv) -> tuple:
    """What two SparseConvs must share to be merged: all but their weights, bias and outputs."""
    return (
        op.x,
        op.x_parts,
        op.c,
        op.k,
        op.kernel_shape,
        op.strides,
        op.dilations,
        op.pads,
        op.format,
        op.activation,
    )


def _merge(graph: Graph, one: SparseConv, two: SparseConv) -> SparseConv:
    weight = np.concatenate([_dense_weight(graph, one), _dense_weight(graph, two)], axis=1)
    packed = pack(weight, one.format)
    bias = ""
    if one.bias or two.bias:
        biases = [_bias(graph, op) for op in (one, two)]
        bias = graph.add_initializer(f"{one.name}_merged_bias", np.concatenate(biases))
    affine = None
    if one.output_affine or two.output_affine:
        parts = [op.output_affine or OutputAffine.identity(op.n) for op in (one, two)]
        affine = OutputAffine(
            np.concatenate([part.scale for part in parts]),
            np.concatenate([part.shift for part in parts]),
        )
    return one.replace(
        output_affine=affine,
        weight_values=graph.add_initializer(f"{one.name}_merged_values", packed.values),
        weight_group_offsets=graph.add_initializer(
            f"{one.name}_merged_group_offsets", packed.group_offsets
        ),
        weight_input_indices=graph.add_initializer(
            f"{one.name}_merged_input_indices", packed.input_indices
        ),
        n=one.n + two.n,
        bias=bias,
        output_split=one.n,
        output_2=two.output,
    )


def _dense_weight(graph: Graph, op: SparseConv) -> np.ndarray:
    return unpack(packed_weight(graph, op))


def _bias(graph: Graph, op: SparseConv) -> np.ndarray:
    if not op.bias:
        return np.zeros(op.n, np.float32)
    return np.asarray(graph.constant(op.bias), np.float32).reshape(op.n)
