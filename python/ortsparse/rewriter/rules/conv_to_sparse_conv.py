"""Conv(X, W, B) with a 4-D float32 X, a constant W and group 1  ->  SparseConv(X, packed W, B).

W [N, C, kH, kW] is packed as its matrix view Wm [K, N], K = C*kH*kW (docs/ops.md). auto_pad
becomes explicit pads; SAME_UPPER/SAME_LOWER depend on X's height and width, which must then be
static. A constant B becomes the op's bias.

Whether the rewrite pays off is the verdict of the cost model measured on SparseConv against
ORT's Conv, for the GEMM the convolution amounts to (M = batch * OH * OW output pixels, K, N) plus
packing X's windows, whose cost depends on kernel, strides and pads (cost_model.window_kind).
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    constant_weight,
    kept,
    packed_sparse_op,
    rewritten,
)
from ortsparse.rewriter.cost_model import conv_rows, window_kind
from ortsparse.rewriter.graph import Graph, Shape, attribute_values
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_conv import SparseConv


class ConvToSparseConv(ConversionRule):
    op_type = "Conv"

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        attributes = attribute_values(node)
        x, w = node.input[:2]
        problem = _unsupported_input(graph, x, attributes)
        if problem:
            return kept(node, problem, _matrix_shape(graph, w))
        weight = constant_weight(graph, w, rank=4, op_type="SparseConv")
        if weight.value is None:
            return kept(node, weight.problem, _matrix_shape(graph, w))
        n, c, *kernel = weight.value.shape
        matrix = weight.value.reshape(n, -1).T  # Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]
        bias = node.input[2] if len(node.input) > 2 else ""
        if bias and graph.constant(bias) is None:
            return kept(node, "bias is not a constant", matrix.shape)

        strides = tuple(attributes.get("strides", (1, 1)))
        dilations = tuple(attributes.get("dilations", (1, 1)))
        pads = _explicit_pads(attributes, graph.shape(x)[2:], kernel, strides, dilations)
        if pads is None:
            return kept(
                node,
                "auto_pad SAME_* needs X's height and width, which are not static",
                matrix.shape,
            )

        verdict = policy.judge_conv(
            matrix, conv_rows(graph.shape(node.output[0])), window_kind(kernel, strides, pads)
        )
        if not verdict.rewrite:
            return kept(node, verdict.reason, matrix.shape, verdict.sparsity)
        conv = packed_sparse_op(
            SparseConv,
            graph,
            node,
            x,
            matrix,
            verdict.format,
            node.output[0],
            bias=bias,
            c=c,
            kernel_shape=tuple(kernel),
            strides=strides,
            dilations=dilations,
            pads=pads,
        )
        graph.replace([node], [conv.to_node()])
        return rewritten(node, conv, verdict)


def _unsupported_input(graph: Graph, x: str, attributes: dict) -> str:
    """Why SparseConv cannot compute this convolution of ``x`` ("" when it can)."""
    x_shape = graph.shape(x)
    if x_shape is None:
        return "rank of X is unknown (SparseConv needs NCHW)"
    if len(x_shape) != 4:
        return f"{len(x_shape) - 2}-D convolution, SparseConv is 2-D only"
    if graph.elem_type(x) != onnx.TensorProto.FLOAT:
        return "X is not float32"
    group = attributes.get("group", 1)
    if group != 1:
        return f"group={group}: grouped and depthwise convolutions are left to ORT"
    return ""


def _matrix_shape(graph: Graph, w: str) -> tuple[int, int] | None:
    """(K, N) of W's matrix view from its inferred type, for the report of a kept node."""
    shape = graph.shape(w)
    if shape is None or len(shape) < 2 or not all(isinstance(dim, int) for dim in shape):
        return None
    return int(np.prod(shape[1:])), shape[0]


def _explicit_pads(
    attributes: dict, spatial: Shape, kernel: list[int], strides: tuple, dilations: tuple
) -> tuple[int, int, int, int] | None:
    """[top, left, bottom, right], auto_pad resolved as ONNX Runtime does; None when SAME_* meets
    a height or width that is not static."""
    auto_pad = attributes.get("auto_pad", b"NOTSET").decode()
    if auto_pad == "NOTSET":
        return tuple(attributes.get("pads", (0, 0, 0, 0)))
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if not all(isinstance(size, int) for size in spatial):
        return None
    heads, tails = [], []
    for size, k, stride, dilation in zip(spatial, kernel, strides, dilations):
        output_size = -(-size // stride)
        # A negative need (stride above the kernel) changes no output size: it pads nothing.
        needed = max(0, (output_size - 1) * stride + (k - 1) * dilation + 1 - size)
        head = -(-needed // 2) if auto_pad == "SAME_LOWER" else needed // 2
        heads.append(head)
        tails.append(needed - head)
    return (*heads, *tails)
