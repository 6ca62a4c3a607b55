"""A model run one image (batch item) at a time: the whole graph becomes the body of a Scan over
the batch axis of its inputs, so that ONNX Runtime carries each image through every layer before
the next one starts.

Run layer by layer, a batch's activations outgrow the caches: ResNet-50 at batch 16 writes up to
51 MB per layer, which the next layer reads back from memory, where one image's 3 MB stays in L3.
On a 2-core Zen 5 ortsparse's SparseConv nodes took 37% longer per image at batch 16 than at batch
1 (docs/performance.md). Whether a model computes each batch item apart from the others is not
proven here: verification compares the outputs with the original's and keeps this form only where
it is measured faster.
"""

from __future__ import annotations

import copy

import onnx
from onnx import TensorProto, helper

from ortsparse.rewriter.graph import default_opset

# Scan's form without a batch axis of its own (opset 9 on).
MIN_OPSET = 9
# From this opset on, Unsqueeze and Squeeze take their axes as an input.
_AXES_AS_INPUT_SINCE = 13


class NotBatched(ValueError):
    """The model's inputs and outputs do not share a leading batch axis to scan over."""


def _leading_dim(value: onnx.ValueInfoProto) -> tuple[str, int | str] | None:
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    dims = value.type.tensor_type.shape.dim
    if not dims:
        raise NotBatched(f"'{value.name}' is a scalar: it has no batch axis")
    first = dims[0]
    if first.HasField("dim_value"):
        return ("value", first.dim_value)
    return ("param", first.dim_param) if first.dim_param else None


def _batch_axis(graph: onnx.GraphProto, inputs: list[onnx.ValueInfoProto]) -> None:
    """Raises NotBatched unless every input has the same declared leading dimension, and every
    output a declared shape that leads with it or with a symbol (exporters name an output's batch
    dimension as they please; verification compares the outputs)."""
    if not inputs:
        raise NotBatched("the model has no inputs")
    leading = {_leading_dim(value) for value in inputs}
    if None in leading or len(leading) != 1:
        raise NotBatched("the inputs do not share one declared leading (batch) dimension")
    for output in graph.output:
        # onnxruntime's Scan needs its body's output ranks, which custom ops do not infer.
        if not output.type.tensor_type.HasField("shape"):
            raise NotBatched(f"output '{output.name}' has no declared shape")
        dim = _leading_dim(output)
        if dim is not None and dim[0] == "value" and dim not in leading:
            raise NotBatched(f"output '{output.name}' does not lead with the inputs' batch axis")


def _one_image_of(value: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    """``value``'s type without its batch axis, named ``name``."""
    tensor = value.type.tensor_type
    dims = [d.dim_value or d.dim_param or None for d in tensor.shape.dim][1:]
    return helper.make_tensor_value_info(name, tensor.elem_type, dims)


def one_image_at_a_time(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` as one Scan node over the batch axis of its inputs, whose body is its graph at
    batch 1 (each input unsqueezed, each output squeezed), initializers included: ortsparse's
    kernels take their weights only from initializers of their own graph on onnxruntime 1.21.
    Raises NotBatched where there is no common batch axis."""
    graph = model.graph
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise NotBatched(f"opset {opset} has no Scan without a batch axis of its own")
    subgraphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(attribute.type in subgraphs for node in graph.node for attribute in node.attribute):
        # Its subgraphs would read the graph's inputs by name from the outer scope: the batch's.
        raise NotBatched("a node holds a subgraph (If, Loop, Scan)")
    initializers = {tensor.name for tensor in graph.initializer}
    if any(value.name in initializers for value in graph.input):
        # A caller may feed such an input in its initializer's place: moved into the body, it
        # could no longer.
        raise NotBatched("initializers are graph inputs too")
    inputs = list(graph.input)
    _batch_axis(graph, inputs)

    used = {name for node in graph.node for name in (*node.input, *node.output)}
    used |= {value.name for value in (*graph.input, *graph.output)}
    used |= initializers

    def fresh(name: str) -> str:
        candidate, suffix = f"{name}_one_image", 1
        while candidate in used:
            candidate, suffix = f"{name}_one_image_{suffix}", suffix + 1
        used.add(candidate)
        return candidate

    axes = fresh("batch_axis")
    axes_as_input = opset >= _AXES_AS_INPUT_SINCE
    body_nodes = []
    if axes_as_input:
        value = helper.make_tensor(axes, TensorProto.INT64, [1], [0])
        body_nodes.append(helper.make_node("Constant", [], [axes], value=value))

    def reshaped(op_type: str, source: str, target: str) -> onnx.NodeProto:
        if axes_as_input:
            return helper.make_node(op_type, [source, axes], [target])
        return helper.make_node(op_type, [source], [target], axes=[0])

    # Inside the body, the graph's own input and output names are taken by the outer graph's
    # values (a graph is in SSA form across its subgraphs): its nodes read and write new names.
    renamed = {value.name: fresh(value.name) for value in (*inputs, *graph.output)}
    body_inputs = []
    for value in inputs:
        image = fresh(f"{value.name}_slice")
        body_inputs.append(_one_image_of(value, image))
        body_nodes.append(reshaped("Unsqueeze", image, renamed[value.name]))
    for node in graph.node:
        node = copy.deepcopy(node)
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
        body_nodes.append(node)
    body_outputs = []
    for value in graph.output:
        image = fresh(f"{value.name}_slice")
        body_nodes.append(reshaped("Squeeze", renamed[value.name], image))
        body_outputs.append(_one_image_of(value, image))
    body = helper.make_graph(
        body_nodes,
        f"{graph.name}_one_image",
        body_inputs,
        body_outputs,
        list(graph.initializer),
        sparse_initializer=list(graph.sparse_initializer),
    )
    scan = helper.make_node(
        "Scan",
        [value.name for value in inputs],
        [value.name for value in graph.output],
        name=fresh("scan_over_batch"),
        body=body,
        num_scan_inputs=len(inputs),
    )
    scanned = onnx.ModelProto()
    scanned.CopyFrom(model)
    del scanned.graph.node[:]
    del scanned.graph.value_info[:]  # batch-sized shapes, which the body's batch of 1 contradicts
    del scanned.graph.initializer[:]
    del scanned.graph.sparse_initializer[:]
    scanned.graph.node.append(scan)
    return scanned
