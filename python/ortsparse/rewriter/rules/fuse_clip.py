"""SparseGemm/SparseConv -> Clip(constant bounds)  ->  same op(activation=clip, clip_min, clip_max).

Clip-6 takes its bounds as attributes, Clip-11 and later as optional inputs, which must be
constants here. An absent bound is the float32 limit, as in ONNX Runtime's Clip.
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.fusion import ActivationRule, sole_consumer_of_type
from ortsparse.rewriter.graph import Graph, attribute_values
from ortsparse.rewriter.sparse_op import Activation, SparseOp

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class FuseClip(ActivationRule):
    label = "Clip"

    def find_activation(self, graph: Graph, op: SparseOp):
        clip = sole_consumer_of_type(graph, op, "Clip")
        if clip is None or clip.input[0] != op.output:
            return None
        bounds = _constant_bounds(graph, clip)
        if bounds is None:
            return None
        return [clip], Activation("clip", clip_min=bounds[0], clip_max=bounds[1])


def _constant_bounds(graph: Graph, clip: onnx.NodeProto) -> tuple[float, float] | None:
    attributes = attribute_values(clip)
    if attributes:  # Clip-6
        if len(clip.input) != 1:
            return None
        return attributes.get("min", -_FLOAT32_MAX), attributes.get("max", _FLOAT32_MAX)
    bound_inputs = [*clip.input[1:], "", ""][:2]
    bounds = []
    for name, default in zip(bound_inputs, (-_FLOAT32_MAX, _FLOAT32_MAX)):
        value = graph.constant(name) if name else np.float32(default)
        if value is None or value.size != 1:
            return None
        bounds.append(float(value.reshape(-1)[0]))
    return bounds[0], bounds[1]
