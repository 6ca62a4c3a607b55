"""Types through ONNX Runtime's contrib ops (domain com.microsoft), which ONNX's shape inference
does not know: it leaves their outputs, and everything after them, without a type. Models from
ORT's own optimizer and many exporters hold them (Gelu, FastGelu, BiasGelu, SkipLayerNormalization,
Attention, ...), and without shapes the rewriter cannot judge the MatMuls after the first one.

For the ops below, the output types follow from the input types as ORT's kernels define them;
Graph adds them to what ONNX inferred and infers again from there, until nothing more is learnt.
Ops not listed keep unknown outputs, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import onnx
from onnx import helper

MS_DOMAIN = "com.microsoft"

TypeOf = Callable[[str], "onnx.TypeProto | None"]


def _same_as_first_input(node: onnx.NodeProto, type_of: TypeOf) -> dict[str, onnx.TypeProto]:
    """Element-wise ops and normalizations: output 0 is shaped like input 0."""
    first = type_of(node.input[0])
    return {node.output[0]: first} if first is not None else {}


def _skip_layer_normalization(node, type_of) -> dict[str, onnx.TypeProto]:
    """Output 0 (and 3, the input + skip + bias sum, when asked for) shaped like input 0; 1 and 2
    are training statistics, left unknown."""
    first = type_of(node.input[0])
    if first is None:
        return {}
    outputs = {node.output[0]: first}
    if len(node.output) > 3 and node.output[3]:
        outputs[node.output[3]] = first
    return outputs


def _attention(node, type_of) -> dict[str, onnx.TypeProto]:
    """Attention(input [B, S, in], weights [in, 3 * hidden] or qkv_hidden_sizes, ...): output 0
    is [B, S, v_hidden], of the input's type."""
    first, weights = type_of(node.input[0]), type_of(node.input[1])
    if first is None or weights is None:
        return {}
    dims = _dims(first)
    if dims is None or len(dims) != 3:
        return {}
    sizes = _attribute(node, "qkv_hidden_sizes")
    if sizes:
        v_hidden = sizes[2]
    else:
        weight_dims = _dims(weights)
        if weight_dims is None or not isinstance(weight_dims[-1], int):
            return {}
        v_hidden = weight_dims[-1] // 3
    elem_type = first.tensor_type.elem_type
    return {node.output[0]: helper.make_tensor_type_proto(elem_type, [*dims[:2], v_hidden])}


def _multi_head_attention(node, type_of) -> dict[str, onnx.TypeProto]:
    """MultiHeadAttention(query [B, S, hidden], key, value [B, L, v_hidden], ...): output 0 is
    [B, S, v_hidden]; with packed query, key and value the query's own hidden size."""
    query = type_of(node.input[0])
    if query is None:
        return {}
    dims = _dims(query)
    if dims is None or len(dims) != 3:
        return {}
    hidden = dims[2]
    value = type_of(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    value_dims = _dims(value) if value is not None else None
    if value_dims is not None and len(value_dims) == 3:
        hidden = value_dims[2]
    elem_type = query.tensor_type.elem_type
    return {node.output[0]: helper.make_tensor_type_proto(elem_type, [*dims[:2], hidden])}


def _embed_layer_normalization(node, type_of) -> dict[str, onnx.TypeProto]:
    """EmbedLayerNormalization(input_ids [B, S], segment_ids, word_embedding [V, H], ...): output
    0 is [B, S, H] of the embedding's type, output 1 (mask index) int32 [B]."""
    ids, embedding = type_of(node.input[0]), type_of(node.input[2])
    if ids is None or embedding is None:
        return {}
    id_dims, embedding_dims = _dims(ids), _dims(embedding)
    if id_dims is None or embedding_dims is None or len(id_dims) != 2:
        return {}
    elem_type = embedding.tensor_type.elem_type
    outputs = {
        node.output[0]: helper.make_tensor_type_proto(elem_type, [*id_dims, embedding_dims[-1]])
    }
    if len(node.output) > 1 and node.output[1]:
        outputs[node.output[1]] = helper.make_tensor_type_proto(
            onnx.TensorProto.INT32, [id_dims[0]]
        )
    return outputs


_RULES: Mapping[str, Callable[[onnx.NodeProto, TypeOf], dict[str, onnx.TypeProto]]] = {
    "Gelu": _same_as_first_input,
    "FastGelu": _same_as_first_input,
    "BiasGelu": _same_as_first_input,
    "QuickGelu": _same_as_first_input,
    "BiasAdd": _same_as_first_input,
    "SimplifiedLayerNormalization": _same_as_first_input,
    "SkipLayerNormalization": _skip_layer_normalization,
    "SkipSimplifiedLayerNormalization": _skip_layer_normalization,
    "Attention": _attention,
    "MultiHeadAttention": _multi_head_attention,
    "EmbedLayerNormalization": _embed_layer_normalization,
}


def contrib_output_types(
    nodes: list[onnx.NodeProto], type_of: TypeOf
) -> dict[str, onnx.TypeProto]:
    """Types of outputs of the known contrib ops in ``nodes`` (in graph order) that ``type_of``
    does not know yet, from their inputs' types (those it knows, and those found before)."""
    found: dict[str, onnx.TypeProto] = {}

    def known(name: str) -> onnx.TypeProto | None:
        value_type = found.get(name) or type_of(name)
        if value_type is None or not value_type.tensor_type.HasField("shape"):
            return None
        return value_type

    for node in nodes:
        rule = _RULES.get(node.op_type) if node.domain == MS_DOMAIN else None
        if rule is None or all(known(name) is not None for name in node.output if name):
            continue
        for name, value_type in rule(node, known).items():
            if known(name) is None:
                found[name] = value_type
    return found


def _dims(value_type: onnx.TypeProto) -> list | None:
    if not value_type.tensor_type.HasField("shape"):
        return None
    return [
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
        for dim in value_type.tensor_type.shape.dim
    ]


def _attribute(node: onnx.NodeProto, name: str):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None
