"""A mutable view of a model's top-level graph, the one thing rules read and edit.

Rules ask it who produces and who consumes a tensor, whether a tensor is a constant (initializer
or Constant node) and what its inferred type is, and they edit it by replacing nodes. ``commit``
writes the edits back into the model and drops the initializers and Constant nodes the edits left
unused. Nodes inside control-flow subgraphs are never edited, but the tensors they read from the
outer scope count as used, so nothing they depend on is fused away or deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

from ortsparse.rewriter.contrib_shapes import MS_DOMAIN, contrib_output_types
from ortsparse.rewriter.errors import RewriteError

Shape = tuple  # of int (static), str (symbolic) or None (unknown) dims

# Tensors above this size hold weights, which shape inference never reads; setting their bytes
# aside keeps the model it serializes far below protobuf's 2 GB limit.
_SHAPE_INFERENCE_DATA_LIMIT_BYTES = 1 << 20


class Graph:
    def __init__(
        self, model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
    ):
        """``input_shapes``: sizes for graph inputs (by name) to infer the other tensors' shapes
        from, in place of their symbolic dims; the model keeps its own."""
        self.model = model
        graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self._initializers = {tensor.name: tensor for tensor in graph.initializer}
        # An initializer that is also a graph input is only a default: the caller may feed another.
        self._overridable = {value.name for value in graph.input}
        self._graph_outputs = {value.name for value in graph.output}
        self._subgraph_reads = _names_read_by_subgraphs(graph)
        with _inputs_sized(model, input_shapes or {}):
            self._types = _infer_value_types(model)
        self._taken_names = _all_names(graph)
        self._initially_used = self._used_names()
        self._added_initializers: list[onnx.TensorProto] = []
        self._constants: dict[str, np.ndarray | None] = {}
        self._producers: dict[str, onnx.NodeProto] | None = None
        self._consumers: dict[str, list[onnx.NodeProto]] | None = None

    # --- producers and consumers -------------------------------------------------------------

    def producer(self, name: str) -> onnx.NodeProto | None:
        self._index()
        return self._producers.get(name)

    def consumers(self, name: str) -> list[onnx.NodeProto]:
        """Top-level nodes reading ``name``, each once."""
        self._index()
        return self._consumers.get(name, [])

    def node_named(self, name: str) -> onnx.NodeProto:
        return next(node for node in self.nodes if node.name == name)

    def used_only_by(self, name: str, nodes: Sequence[onnx.NodeProto]) -> bool:
        """True when every use of ``name`` is by one of ``nodes``: fusing them loses no reader."""
        if name in self._graph_outputs or name in self._subgraph_reads:
            return False
        node_ids = {id(node) for node in nodes}
        return all(id(consumer) in node_ids for consumer in self.consumers(name))

    def sole_consumer(self, name: str) -> onnx.NodeProto | None:
        """The one node reading ``name`` when nothing else does (no graph output, no subgraph)."""
        consumers = self.consumers(name)
        if len(consumers) == 1 and self.used_only_by(name, consumers):
            return consumers[0]
        return None

    def _index(self) -> None:
        if self._producers is not None:
            return
        self._producers, self._consumers = {}, {}
        for node in self.nodes:
            for output in node.output:
                if output:
                    self._producers[output] = node
            for input_name in dict.fromkeys(node.input):
                if input_name:
                    self._consumers.setdefault(input_name, []).append(node)

    # --- constants and types -----------------------------------------------------------------

    def constant(self, name: str) -> np.ndarray | None:
        """The value of ``name`` when it cannot change between runs, else None."""
        if name not in self._constants:
            self._constants[name] = self._read_constant(name)
        return self._constants[name]

    def _read_constant(self, name: str) -> np.ndarray | None:
        if name in self._initializers and name not in self._overridable:
            return _tensor_value(self._initializers[name])
        producer = self.producer(name)
        if producer is not None and _is_constant_node(producer):
            return _constant_node_value(producer)
        return None

    def shape(self, name: str) -> Shape | None:
        """Dims of ``name``: an int, a symbol or None each; None when even the rank is unknown."""
        value_type = self._types.get(name)
        if value_type is None or not value_type.tensor_type.HasField("shape"):
            return None
        return tuple(_dim(dim) for dim in value_type.tensor_type.shape.dim)

    def elem_type(self, name: str) -> int | None:
        value_type = self._types.get(name)
        return value_type.tensor_type.elem_type if value_type is not None else None

    def set_type(self, name: str, elem_type: int, shape: Shape | None) -> None:
        """Records the type of a tensor a rule created, for the rules that run after it."""
        self._types[name] = helper.make_tensor_type_proto(elem_type, shape)

    # --- edits -------------------------------------------------------------------------------

    def unique_name(self, base: str) -> str:
        candidate, suffix = base, 1
        while candidate in self._taken_names:
            candidate, suffix = f"{base}_{suffix}", suffix + 1
        self._taken_names.add(candidate)
        return candidate

    def add_initializer(self, base_name: str, value: np.ndarray) -> str:
        name = self.unique_name(base_name)
        self._added_initializers.append(numpy_helper.from_array(value, name))
        self._constants[name] = value
        return name

    def replace(
        self, old_nodes: Sequence[onnx.NodeProto], new_nodes: Sequence[onnx.NodeProto]
    ) -> None:
        """Puts ``new_nodes`` where the last of ``old_nodes`` stood and drops ``old_nodes``.

        The last old node comes after every producer the old nodes read from, so new nodes that
        read the same tensors stay in topological order.
        """
        old_ids = {id(node) for node in old_nodes}
        positions = [index for index, node in enumerate(self.nodes) if id(node) in old_ids]
        if len(positions) != len(old_ids):
            raise ValueError("replace() was given nodes that are not in the graph")
        last = positions[-1]
        kept_before = [node for node in self.nodes[:last] if id(node) not in old_ids]
        self.nodes = kept_before + list(new_nodes) + self.nodes[last + 1 :]
        for node in new_nodes:
            self._taken_names.update(name for name in (node.name, *node.output) if name)
        self._producers = self._consumers = None

    def commit(self) -> None:
        """Writes the edited node list back and removes what the edits left unused."""
        graph = self.model.graph
        used = self._used_names()
        became_unused = self._initially_used - used
        self.nodes = [
            node
            for node in self.nodes
            if not (_is_constant_node(node) and node.output[0] in became_unused)
        ]
        graph.ClearField("node")
        graph.node.extend(self.nodes)

        for index in reversed(range(len(graph.initializer))):
            if graph.initializer[index].name in became_unused:
                del graph.initializer[index]
        graph.initializer.extend(
            tensor for tensor in self._added_initializers if tensor.name in used
        )

        produced = {output for node in self.nodes for output in node.output}
        for index in reversed(range(len(graph.value_info))):
            if graph.value_info[index].name not in produced:
                del graph.value_info[index]

    def _used_names(self) -> set[str]:
        used = {name for node in self.nodes for name in node.input if name}
        return used | self._graph_outputs | self._subgraph_reads


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param if dim.HasField("dim_param") else None


def attribute_values(node: onnx.NodeProto) -> dict:
    """The node's attributes by name (strings as bytes, as onnx.helper reads them)."""
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}


def is_default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


def _is_constant_node(node: onnx.NodeProto) -> bool:
    return node.op_type == "Constant" and is_default_domain(node)


def _tensor_value(tensor: onnx.TensorProto) -> np.ndarray:
    if external_data_helper.uses_external_data(tensor):
        raise RewriteError(
            f"tensor {tensor.name!r} keeps its data in an external file that was not loaded; "
            "load the model with its external data (onnx.load(path)) or use rewrite_file"
        )
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as error:
        raise RewriteError(f"tensor {tensor.name!r} is malformed: {error}") from error


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    if len(node.attribute) != 1:
        return None
    attribute = node.attribute[0]
    if attribute.name == "value":
        return _tensor_value(attribute.t)
    if attribute.name in ("value_float", "value_floats", "value_int", "value_ints"):
        value = helper.get_attribute_value(attribute)
        return np.asarray(value, dtype=np.float32 if "float" in attribute.name else np.int64)
    return None  # strings and sparse tensors are never weights or epilogue constants


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _names_read_by_subgraphs(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name any subgraph node reads: a superset of what they read from outside."""
    names: set[str] = set()
    for node in graph.node:
        for subgraph in subgraphs(node):
            names.update(name for inner in subgraph.node for name in inner.input if name)
            names |= _names_read_by_subgraphs(subgraph)
    return names


def _all_names(graph: onnx.GraphProto) -> set[str]:
    names = {value.name for value in (*graph.input, *graph.output, *graph.value_info)}
    names.update(tensor.name for tensor in graph.initializer)
    for node in graph.node:
        names.add(node.name)
        names.update(node.output)
        for subgraph in subgraphs(node):
            names |= _all_names(subgraph)
    names.discard("")
    return names


def _infer_value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Types of the top-level graph's tensors by strict ONNX shape inference, carried through
    ONNX Runtime's contrib ops where contrib_shapes knows them: their outputs' types are given to
    ONNX's inference as hints, and it infers again from there, until nothing more is learnt."""
    types = _onnx_value_types(model, {})
    contrib_nodes = [node for node in model.graph.node if node.domain == MS_DOMAIN]
    hints: dict[str, onnx.TypeProto] = {}
    for _ in contrib_nodes:
        found = contrib_output_types(contrib_nodes, types.get)
        if not found:
            break
        hints.update(found)
        types = _onnx_value_types(model, hints)
    return types


def _onnx_value_types(
    model: onnx.ModelProto, hints: dict[str, onnx.TypeProto]
) -> dict[str, onnx.TypeProto]:
    """Types by strict ONNX shape inference, with ``hints`` (types of tensors it cannot infer)
    added to the graph's value_info for the time it takes."""
    value_info = model.graph.value_info
    added = [helper.make_value_info(name, value_type) for name, value_type in hints.items()]
    value_info.extend(added)
    try:
        with _large_tensor_data_set_aside(model):
            try:
                inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
            except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
                raise RewriteError(
                    f"the model is malformed: shape inference failed: {error}"
                ) from error
    finally:
        del value_info[len(value_info) - len(added) :]
    graph = inferred.graph
    types = {
        tensor.name: helper.make_tensor_type_proto(tensor.data_type, tensor.dims)
        for tensor in graph.initializer
    }
    types.update(
        (value.name, value.type) for value in (*graph.input, *graph.value_info, *graph.output)
    )
    return types


@contextmanager
def _inputs_sized(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]
) -> Iterator[None]:
    """The graph inputs named in ``input_shapes`` with those sizes, for as long as it takes.
    Raises RewriteError for an input the model lacks or a shape of another rank or with other
    fixed sizes."""
    inputs = {value.name: value for value in model.graph.input}
    saved = []
    for name, sizes in input_shapes.items():
        value = inputs.get(name)
        if value is None:
            raise RewriteError(f"the model has no input named {name!r}")
        shape = value.type.tensor_type.shape
        if len(shape.dim) != len(sizes):
            raise RewriteError(
                f"input {name!r} has rank {len(shape.dim)}; the shape given, {list(sizes)}, has "
                f"rank {len(sizes)}"
            )
        for axis, (dim, size) in enumerate(zip(shape.dim, sizes)):
            # Some exporters write an unknown size as -1.
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                raise RewriteError(
                    f"input {name!r} has the fixed size {dim.dim_value} at axis {axis}; the "
                    f"shape given has {size}"
                )
        copy = onnx.TensorShapeProto()
        copy.CopyFrom(shape)
        saved.append((shape, copy))
        for dim, size in zip(shape.dim, sizes):
            dim.dim_value = int(size)
    try:
        yield
    finally:
        for shape, original in saved:
            shape.CopyFrom(original)


@contextmanager
def _large_tensor_data_set_aside(model: onnx.ModelProto) -> Iterator[None]:
    graph = model.graph
    tensors = [*graph.initializer]
    tensors += [
        attribute.t
        for node in graph.node
        if _is_constant_node(node)
        for attribute in node.attribute
    ]
    set_aside = [
        (tensor, tensor.raw_data)
        for tensor in tensors
        if len(tensor.raw_data) > _SHAPE_INFERENCE_DATA_LIMIT_BYTES
    ]
    for tensor, _ in set_aside:
        tensor.ClearField("raw_data")
    try:
        yield
    finally:
        for tensor, data in set_aside:
            tensor.raw_data = data


def default_opset(model: onnx.ModelProto) -> int:
    """The model's ai.onnx opset version; 0 where it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
