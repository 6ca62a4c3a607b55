"""A Conv or ConvTranspose left to ORT (constant weight) -> Adds of constants along the channels
and BatchNormalizations (inference form)  ->  the same node with them folded into its weight and
bias.

    y * s + t:   W'[o] = W[o] * s[o],   b'[o] = b[o] * s[o] + t[o]     (o: output channel)

ORT folds neither into a ConvTranspose: PP-OCR's text detector ends on two ConvTransposes, each
followed by an Add of its bias (paddle2onnx writes it apart) and the first by a
BatchNormalization, each a pass over a map of 320x320 or 640x640. Output channels lie along W's
axis 0 for Conv, along axis 1 for ConvTranspose (whose groups are then refused).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.fusion import OrtNodeRule, channel_constant, sole_default_consumer
from ortsparse.rewriter.graph import Graph, attribute_values, is_default_domain
from ortsparse.rewriter.rules.fold_batch_norm import batch_norm_factors

# The axis of the output along which its channels lie (NCHW), and that of W for each op.
_CHANNEL_AXIS = 1
_OUTPUT_AXIS = {"Conv": 0, "ConvTranspose": 1}


class FoldIntoOrtConvolution(OrtNodeRule):
    label = "Add/BatchNormalization folded into ORT's convolution"

    def rewrite(self, graph: Graph, node: onnx.NodeProto) -> None:
        weight = _weight(graph, node)
        if weight is None:
            return
        axis = _OUTPUT_AXIS[node.op_type]
        absorbed, scale, shift = _affine_after(graph, node.output[0], weight.shape[axis])
        if not absorbed:
            return
        factors = scale.reshape([-1 if a == axis else 1 for a in range(weight.ndim)])
        bias = graph.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else 0.0
        folded = helper.make_node(
            node.op_type,
            [
                node.input[0],
                graph.add_initializer(
                    f"{node.name or node.output[0]}_folded_weight",
                    (weight * factors).astype(np.float32),
                ),
                graph.add_initializer(
                    f"{node.name or node.output[0]}_folded_bias",
                    (np.asarray(bias, np.float64) * scale + shift).astype(np.float32),
                ),
            ],
            [absorbed[-1].output[0]],
            name=node.name,
        )
        folded.attribute.extend(node.attribute)
        graph.replace([node, *absorbed], [folded])


def _weight(graph: Graph, node: onnx.NodeProto) -> np.ndarray | None:
    """The float64 weight of a default-domain Conv, or ConvTranspose of one group, whose weight
    and bias are constants; None for anything else."""
    if node.op_type not in _OUTPUT_AXIS or not is_default_domain(node) or len(node.input) < 2:
        return None
    if node.op_type == "ConvTranspose" and attribute_values(node).get("group", 1) != 1:
        return None
    weight = graph.constant(node.input[1])
    if weight is None or weight.dtype != np.float32 or weight.ndim < 3:
        return None
    if len(node.input) > 2 and node.input[2] and graph.constant(node.input[2]) is None:
        return None
    return weight.astype(np.float64)


def _affine_after(
    graph: Graph, y: str, channels: int
) -> tuple[list[onnx.NodeProto], np.ndarray, np.ndarray]:
    """The Adds of channel constants and BatchNormalizations that follow ``y`` one after the
    other, each the sole reader of the one before, and the affine y * s + t they make."""
    absorbed: list[onnx.NodeProto] = []
    scale, shift = np.ones(channels), np.zeros(channels)
    shape = graph.shape(y)
    while shape is not None:
        tensor = absorbed[-1].output[0] if absorbed else y
        add = sole_default_consumer(graph, tensor, "Add")
        batch_norm = sole_default_consumer(graph, tensor, "BatchNormalization")
        if add is not None:
            value = channel_constant(graph, add, tensor, channels, _CHANNEL_AXIS, len(shape))
            if value is None:
                break
            shift = shift + value
            absorbed.append(add)
        elif batch_norm is not None:
            factors = batch_norm_factors(graph, batch_norm, tensor, channels)
            if factors is None:
                break
            normalizing, mean, offset = factors
            scale, shift = scale * normalizing, (shift - mean) * normalizing + offset
            absorbed.append(batch_norm)
        else:
            break
    return absorbed, scale, shift
