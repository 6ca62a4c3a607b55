"""com.microsoft Attention(X, W, bias, mask_index) with a constant W  ->  SparseGemm(X, packed W,
bias) -> Split into Q, K, V -> com.microsoft MultiHeadAttention(Q, K, V, mask_index).

ONNX Runtime's transformer optimizer fuses each self-attention block of BERT-like models into one
Attention node, whose QKV projection (W [hidden_in, 3 * hidden]) is the block's largest product;
inside Attention it is a dense GEMM that no rule could reach. MultiHeadAttention runs the same
attention on projected Q, K, V (ORT's CPU kernels give identical outputs), so the projection
becomes a SparseGemm like any MatMul. The Split costs a copy of Q, K and V, which the verdict does
not count: verification measures the whole model.

Kept: anything MultiHeadAttention's CPU kernel does not take the same way (past state,
unidirectional masking, rotary embeddings, a 4-D mask or mask indices of 2 * batch or more, unequal
Q and K sizes), and a present output anything reads.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ortsparse.rewriter.contrib_shapes import MS_DOMAIN
from ortsparse.rewriter.conversion import (
    Conversion,
    ConversionRule,
    constant_weight,
    display_name,
    kept,
    packed_sparse_op,
    rewritten,
    static_weight_shape,
)
from ortsparse.rewriter.cost_model import representative_m
from ortsparse.rewriter.graph import Graph, attribute_values, default_opset
from ortsparse.rewriter.policy import SparsityPolicy
from ortsparse.rewriter.sparse_gemm import SparseGemm

FLOAT = onnx.TensorProto.FLOAT

_INPUT, _WEIGHTS, _BIAS, _MASK_INDEX, _PAST, _ATTENTION_BIAS, _PAST_SEQUENCE_LENGTH = range(7)
# MultiHeadAttention's inputs: query, key, value, bias, key_padding_mask, attention_bias.
_MHA_ATTENTION_BIAS = 5
# Attributes both ops read the same way; every other Attention attribute must be at its default.
_SHARED_ATTRIBUTES = ("num_heads", "scale", "mask_filter_value")
_DEFAULT_ATTRIBUTES = {
    "unidirectional": 0,
    "do_rotary": 0,
    "rotary_embedding_dim": 0,
    "past_present_share_buffer": 0,
}
# The Split op took its sizes as an attribute before opset 13.
_SPLIT_SIZES_AS_INPUT_SINCE = 13


class AttentionToSparseGemm(ConversionRule):
    op_type = "Attention"
    domain = MS_DOMAIN

    def convert(self, graph: Graph, node: onnx.NodeProto, policy: SparsityPolicy) -> Conversion:
        inputs = [*node.input, *[""] * (_PAST_SEQUENCE_LENGTH + 1 - len(node.input))]
        weight = constant_weight(graph, inputs[_WEIGHTS])
        if weight.value is None:
            return kept(node, weight.problem, static_weight_shape(graph, inputs[_WEIGHTS]))
        weight_shape = weight.value.shape
        problem = _unsupported(graph, node, inputs, weight.value)
        if problem:
            return kept(node, problem, weight_shape)

        x_shape = graph.shape(inputs[_INPUT])
        verdict = policy.judge(weight.value, representative_m(x_shape[:-1]))
        if not verdict.rewrite:
            return kept(node, verdict.reason, weight_shape, verdict.sparsity)

        base = display_name(node)
        qkv = graph.unique_name(f"{base}/qkv")
        gemm = packed_sparse_op(
            SparseGemm, graph, node, inputs[_INPUT], weight.value, verdict.format, qkv
        )
        bias = graph.constant(inputs[_BIAS]) if inputs[_BIAS] else None
        if bias is not None:
            gemm = gemm.replace(bias=graph.add_initializer(f"{base}.bias", bias))
        sizes = _qkv_sizes(node, weight.value)
        q, k, v = (graph.unique_name(f"{base}/{part}") for part in "qkv")
        attention_inputs = [q, k, v, "", inputs[_MASK_INDEX]]
        if inputs[_ATTENTION_BIAS]:
            attention_inputs += [""] * (_MHA_ATTENTION_BIAS - len(attention_inputs))
            attention_inputs.append(inputs[_ATTENTION_BIAS])
        attributes = attribute_values(node)
        graph.replace(
            [node],
            [
                gemm.to_node(),
                _split(graph, base, qkv, [q, k, v], sizes),
                helper.make_node(
                    "MultiHeadAttention",
                    _without_trailing_blanks(attention_inputs),
                    [node.output[0]],
                    name=graph.unique_name(f"{base}_MultiHeadAttention"),
                    domain=MS_DOMAIN,
                    **{name: attributes[name] for name in _SHARED_ATTRIBUTES if name in attributes},
                ),
            ],
        )
        return rewritten(node, gemm, verdict)


def _unsupported(graph: Graph, node: onnx.NodeProto, inputs: list[str], weight) -> str:
    """Why MultiHeadAttention cannot take over ``node``'s attention, or "" where it can."""
    attributes = attribute_values(node)
    for name, default in _DEFAULT_ATTRIBUTES.items():
        if attributes.get(name, default) != default:
            return f"{name}={attributes[name]} (MultiHeadAttention on the CPU lacks it)"
    if inputs[_PAST] or inputs[_PAST_SEQUENCE_LENGTH]:
        return "it reads past key/value state (MultiHeadAttention takes it another way)"
    if any(output and not graph.used_only_by(output, []) for output in node.output[1:]):
        return "its present (key/value state) output is used"
    x_shape = graph.shape(inputs[_INPUT])
    if x_shape is None or len(x_shape) != 3 or graph.elem_type(inputs[_INPUT]) != FLOAT:
        return "its input is not float32 [batch, sequence, hidden]"
    sizes = _qkv_sizes(node, weight)
    if sizes is None:
        return "qkv_hidden_sizes do not match the weight's columns"
    if sizes[0] != sizes[1]:
        return f"Q and K sizes differ ({sizes[0]} and {sizes[1]})"
    if inputs[_BIAS]:
        bias = graph.constant(inputs[_BIAS])
        if bias is None or bias.dtype != np.float32 or bias.shape != (weight.shape[1],):
            return f"its bias is not a float32 constant [{weight.shape[1]}]"
    return _mask_problem(graph, inputs[_MASK_INDEX], x_shape[0])


def _mask_problem(graph: Graph, mask: str, batch) -> str:
    """MultiHeadAttention's key_padding_mask reads a raw mask [batch, total] or [batch, sequence,
    total] and end positions [batch] as Attention's mask_index does; not the 4-D mask nor the
    start-and-end forms [2 * batch] and [3 * batch + 2]."""
    if not mask:
        return ""
    shape = graph.shape(mask)
    if shape is None:
        return "the shape of its mask_index is unknown"
    if len(shape) in (2, 3):
        return ""
    if len(shape) == 1 and shape[0] is not None and shape[0] == batch:
        return ""
    return f"its mask_index of shape {list(shape)} is not one MultiHeadAttention takes"


def _qkv_sizes(node: onnx.NodeProto, weight) -> tuple[int, int, int] | None:
    sizes = attribute_values(node).get("qkv_hidden_sizes")
    columns = weight.shape[1]
    if not sizes:
        return (columns // 3,) * 3 if columns % 3 == 0 else None
    return tuple(sizes) if len(sizes) == 3 and sum(sizes) == columns else None


def _split(graph: Graph, base: str, qkv: str, outputs: list[str], sizes) -> onnx.NodeProto:
    name = graph.unique_name(f"{base}_Split")
    if default_opset(graph.model) < _SPLIT_SIZES_AS_INPUT_SINCE:
        return helper.make_node("Split", [qkv], outputs, name=name, axis=2, split=list(sizes))
    split_sizes = graph.add_initializer(f"{base}.qkv_sizes", np.array(sizes, dtype=np.int64))
    return helper.make_node("Split", [qkv, split_sizes], outputs, name=name, axis=2)



def _without_trailing_blanks(names: list[str]) -> list[str]:
    while names and not names[-1]:
        names = names[:-1]
    return names
