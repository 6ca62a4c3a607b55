"""Conv(X, W, B) with a 4-D float32 X and a constant W  ->  SparseConv(X, packed W, B).

W [N, C / groups, kH, kW] is packed as the matrix view Wm [K, N], K = C*kH*kW (docs/ops.md); a
grouped or depthwise Conv's W becomes the block-diagonal matrix of its groups, whose zeros
SparseConv never touches. auto_pad becomes explicit pads; SAME_UPPER/SAME_LOWER depend on X's
height and width, which must then be static. A constant B becomes the op's bias.

Whether the rewrite pays off is the verdict of the cost model measured on SparseConv against
ORT's Conv, for the GEMM the convolution amounts to (M = batch * OH * OW output pixels, K, N) and
what SparseConv's direct kernels compute besides (cost_model.conv_work).
"""

from __future__ import annotations

import numpy as np
import onnx

from ortsparse.rewriter.conv_window import conv_window
from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    constant_weight,
    kept,
    packed_sparse_op,
    rewritten,
)
from ortsparse.rewriter.cost_model import conv_rows, conv_work
from ortsparse.rewriter.decisions import Refusal
from ortsparse.rewriter.graph import Graph, attribute_values, is_default_domain
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_op import NO_ACTIVATION


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
        groups = attributes.get("group", 1)
        n, group_channels, *kernel = weight.value.shape
        if n % groups:
            return kept(node, f"{n} output channels do not split into group={groups}", None)
        own_sparsity = 1.0 - np.count_nonzero(weight.value) / max(weight.value.size, 1)
        full = _block_diagonal(weight.value, groups)
        c = group_channels * groups
        matrix = full.reshape(n, -1).T  # Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]
        bias = node.input[2] if len(node.input) > 2 else ""
        if bias and graph.constant(bias) is None:
            return kept(node, "bias is not a constant", matrix.shape)

        window = conv_window(attributes, graph.shape(x)[2:], kernel)
        if isinstance(window, Refusal):
            return kept(node, window, matrix.shape)
        strides, dilations, pads = window.strides, window.dilations, window.pads

        activation, epilogue_output = _epilogue(graph, node.output[0])
        y_shape = graph.shape(node.output[0])
        out_size = tuple(y_shape[2:]) if y_shape is not None and len(y_shape) == 4 else None
        work = conv_work(
            graph.shape(x),
            out_size,
            kernel,
            strides,
            dilations,
            pads,
            groups,
            activation=activation,
            pooled=_pooled(graph, epilogue_output),
        )
        verdict = policy.judge_conv(
            matrix, conv_rows(y_shape), work, own_sparsity if groups > 1 else None
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


# Single-node activations that the epilogue fusions fold into SparseConv, by their names there
# (Gelu's tanh form is gelu_tanh there; the cost model does not tell the two apart).
_ACTIVATION_OPS = {
    "Relu": "relu",
    "Clip": "clip",
    "LeakyRelu": "leaky_relu",
    "HardSwish": "hard_swish",
    "Sigmoid": "sigmoid",
    "Gelu": "gelu",
}
# Activations written as x * Gate(x), by their gate.
_GATED_ACTIVATIONS = {"Sigmoid": "silu", "HardSigmoid": "hard_swish"}


def _epilogue(graph: Graph, y: str) -> tuple[str, str]:
    """The activation (a sparse_op.Activation name) that follows the Conv's output ``y``, maybe
    through a BatchNormalization and then an Add that alone read it, as the epilogue fusions will
    fold it, and the tensor that comes out of them: the cost model counts ORT's pass for a SiLU
    against SparseConv's fused one, and the provider runs the weight as compiled code or on tile
    kernels depending on the activation."""
    for skipped in ("BatchNormalization", "Add"):
        reader = graph.sole_consumer(y)
        if reader is not None and reader.op_type == skipped and is_default_domain(reader):
            y = reader.output[0]
    reader = graph.sole_consumer(y)
    if reader is not None and is_default_domain(reader) and reader.op_type in _ACTIVATION_OPS:
        return _ACTIVATION_OPS[reader.op_type], reader.output[0]
    for gate in graph.consumers(y):
        if gate.op_type not in _GATED_ACTIVATIONS or not is_default_domain(gate):
            continue
        for mul in graph.consumers(gate.output[0]):
            if mul.op_type == "Mul" and sorted(mul.input) == sorted([y, gate.output[0]]):
                return _GATED_ACTIVATIONS[gate.op_type], mul.output[0]
    return NO_ACTIVATION, y


# Pooling nodes that ORT runs on its Conv's blocked (NCHWc) output as it is.
_NCHWC_POOLS = ("MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool")


def _pooled(graph: Graph, name: str) -> bool:
    """Whether a pooling node alone reads tensor ``name``: ORT's Conv then keeps its blocked
    layout for it and reorders only the pool's smaller output to NCHW."""
    reader = graph.sole_consumer(name)
    return reader is not None and is_default_domain(reader) and reader.op_type in _NCHWC_POOLS


def _unsupported_input(graph: Graph, x: str, attributes: dict) -> str:
    """Why SparseConv cannot compute this convolution of ``x`` ("" when it can)."""
    x_shape = graph.shape(x)
    if x_shape is None:
        return "rank of X is unknown (SparseConv needs NCHW)"
    if len(x_shape) != 4:
        return f"{len(x_shape) - 2}-D convolution, SparseConv is 2-D only"
    if graph.elem_type(x) != onnx.TensorProto.FLOAT:
        return "X is not float32"
    groups = attributes.get("group", 1)
    if groups < 1:
        return f"group={groups} is not a positive count"
    channels = x_shape[1]
    if isinstance(channels, int) and channels % groups:
        return f"{channels} input channels do not split into group={groups}"
    return ""


def _block_diagonal(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped Conv's W [N, C / groups, kH, kW] as the ungrouped W [N, C, kH, kW] whose group g
    of output channels sees only input channels of group g."""
    if groups == 1:
        return weight
    n, group_channels = weight.shape[:2]
    group_outputs = n // groups
    full = np.zeros((n, group_channels * groups, *weight.shape[2:]), weight.dtype)
    for g in range(groups):
        outputs = slice(g * group_outputs, (g + 1) * group_outputs)
        full[outputs, g * group_channels : (g + 1) * group_channels] = weight[outputs]
    return full


def _matrix_shape(graph: Graph, w: str) -> tuple[int, int] | None:
    """(K, N) of W's matrix view from its inferred type, for the report of a kept node."""
    shape = graph.shape(w)
    if shape is None or len(shape) < 2 or not all(isinstance(dim, int) for dim in shape):
        return None
    return int(np.prod(shape[1:])), shape[0]
