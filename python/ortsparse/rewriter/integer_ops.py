"""What the MatMulInteger and ConvInteger rules share: the checks on the zero points and the
activation that let the int32 product be computed from a sparse weight."""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from ortsparse.rewriter.graph import Graph

ACTIVATION_TYPES = (TensorProto.UINT8, TensorProto.INT8)


def weight_zero_point_refusal(graph: Graph, zero_point: str) -> str | None:
    """Why the weight zero point ``zero_point`` ("" when absent) rules the rewrite out, or None."""
    if not zero_point:
        return None
    value = graph.constant(zero_point)
    if value is None:
        return "weight zero point is not a constant"
    if np.any(value != 0):
        # The pruned zeros would then stand for -zero_point: the weight is not sparse.
        return "weight zero point is not 0"
    return None


def activation_refusal(graph: Graph, x: str, zero_point: str, rank: str) -> str | None:
    """Why activation ``x`` and its zero point ``zero_point`` ("" when absent) rule the rewrite
    out, or None; ``rank`` is "matrix" (rank >= 2) or "image" (rank 4)."""
    if graph.elem_type(x) not in ACTIVATION_TYPES:
        return "the activation is not known to be uint8 or int8"
    shape = graph.shape(x)
    if rank == "matrix" and (shape is None or len(shape) < 2):
        return "the activation's rank is unknown or below 2"
    if rank == "image" and (shape is None or len(shape) != 4):
        return "the activation is not known to be NCHW (rank 4)"
    if zero_point:
        zero_point_shape = graph.shape(zero_point)
        if zero_point_shape is None or not all(isinstance(d, int) for d in zero_point_shape):
            return "the activation zero point's shape is unknown"
        if math.prod(zero_point_shape) != 1:
            return "the activation zero point is per row, not per tensor"
    return None
