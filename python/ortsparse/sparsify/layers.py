"""The layers of an ONNX model that sparsify prunes, and the matrix view of each weight.

A layer is a MatMul with a constant 2-D weight B [K, N], a Gemm with a constant B (transB 0 or
1, transA 0), or a Conv with a constant 4-D weight [N, C, kH, kW] and group 1; its weight must be
float32 and hold at least `min_weights` entries. Weights are initializers or Constant nodes'
values. The matrix view of a weight is W [N, K]: output channels by input features, for a Conv
with K ordered tap by tap, channels fastest, (i * kW + j) * C + c, so that the 1x4 pattern's
quads are 4 channels at one tap, as the INT8 convolution stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

#: Smaller weights are left dense: the kernels gain nothing on them.
DEFAULT_MIN_WEIGHTS = 1024


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right


@dataclass
class Layer:
    node_name: str
    op_type: str  # MatMul, Gemm or Conv
    weight_name: str
    activation: str  # the tensor the weight multiplies
    tensor: TensorProto = field(repr=False)  # the weight, updated in place
    transposed: bool = False  # a Gemm with transB = 1: B is already [N, K]
    conv: ConvGeometry | None = None

    def weight(self) -> np.ndarray:
        return numpy_helper.to_array(self.tensor)

    def matrix(self) -> np.ndarray:
        """The weight as W [N, K] (module docstring)."""
        weight = self.weight()
        if self.conv is not None:
            n = weight.shape[0]
            return np.ascontiguousarray(weight.transpose(0, 2, 3, 1).reshape(n, -1))
        return weight if self.transposed else np.ascontiguousarray(weight.T)

    def store(self, matrix: np.ndarray) -> None:
        """Writes W [N, K] back into the model's tensor, in the weight's own layout."""
        if self.conv is not None:
            n, c, kh, kw = self.tensor.dims
            weight = matrix.reshape(n, kh, kw, c).transpose(0, 3, 1, 2)
        else:
            weight = matrix if self.transposed else matrix.T
        self.tensor.CopyFrom(
            numpy_helper.from_array(
                np.ascontiguousarray(weight, dtype=np.float32), self.tensor.name
            )
        )


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _constants(graph: onnx.GraphProto) -> dict[str, TensorProto]:
    tensors = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attribute in node.attribute:
                if attribute.name == "value":
                    tensors[node.output[0]] = attribute.t
    return tensors


def _conv_geometry(node: onnx.NodeProto, weight_shape: tuple[int, ...]) -> ConvGeometry | None:
    """The window of a 2-D, group-1 Conv with explicit (or no) padding; None for any other."""
    attributes = _attributes(node)
    if attributes.get("group", 1) != 1 or len(weight_shape) != 4:
        return None
    if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        return None
    kernel = tuple(attributes.get("kernel_shape", weight_shape[2:]))
    pads = tuple(attributes.get("pads", (0, 0, 0, 0)))
    return ConvGeometry(
        kernel=(int(kernel[0]), int(kernel[1])),
        strides=tuple(int(v) for v in attributes.get("strides", (1, 1))),
        dilations=tuple(int(v) for v in attributes.get("dilations", (1, 1))),
        pads=(int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])),
    )


def end_nodes(model: onnx.ModelProto) -> set[str]:
    """The names of the first and the last MatMul/Gemm/Conv node with a constant weight (a stem
    and a classifier head, typically), whatever their size."""
    tensors = _constants(model.graph)
    names = [
        node.name or f"{node.op_type}_{index}"
        for index, node in enumerate(model.graph.node)
        if node.op_type in ("MatMul", "Gemm", "Conv")
        and len(node.input) > 1
        and node.input[1] in tensors
    ]
    return {names[0], names[-1]} if names else set()


def find_layers(
    model: onnx.ModelProto, min_weights: int = DEFAULT_MIN_WEIGHTS
) -> tuple[list[Layer], list[str]]:
    """The model's prunable layers in graph order, and a line for each MatMul/Gemm/Conv with a
    constant weight that is not one, saying why."""
    tensors = _constants(model.graph)
    layers: list[Layer] = []
    skipped: list[str] = []
    for index, node in enumerate(model.graph.node):
        if node.op_type not in ("MatMul", "Gemm", "Conv") or len(node.input) < 2:
            continue
        tensor = tensors.get(node.input[1])
        if tensor is None:
            continue
        name = node.name or f"{node.op_type}_{index}"
        shape = tuple(tensor.dims)
        reason = None
        conv = None
        transposed = False
        if tensor.data_type != TensorProto.FLOAT:
            reason = f"weight {node.input[1]} is {TensorProto.DataType.Name(tensor.data_type)}"
        elif int(np.prod(shape)) < min_weights:
            reason = f"weight has {int(np.prod(shape))} entries, fewer than {min_weights}"
        elif node.op_type == "Conv":
            conv = _conv_geometry(node, shape)
            if conv is None:
                reason = "grouped, auto-padded or not 2-D"
        elif len(shape) != 2:
            reason = f"weight is {len(shape)}-D"
        elif node.op_type == "Gemm":
            attributes = _attributes(node)
            if attributes.get("transA", 0):
                reason = "Gemm with transA"
            transposed = bool(attributes.get("transB", 0))
        if reason is not None:
            skipped.append(f"{name}: {reason}, left as it is")
            continue
        layers.append(
            Layer(name, node.op_type, node.input[1], node.input[0], tensor, transposed, conv)
        )
    shared = {layer.weight_name for layer in layers}
    if len(shared) != len(layers):
        names = [layer.weight_name for layer in layers]
        twice = {name for name in names if names.count(name) > 1}
        skipped.extend(f"weight {name} is shared by several nodes, left as it is" for name in twice)
        layers = [layer for layer in layers if layer.weight_name not in twice]
    return layers, skipped


def input_rows(layer: Layer, activation: np.ndarray) -> Iterator[np.ndarray]:
    """The rows X [rows, K] that the layer's W [N, K] multiplies in one batch of its input, in
    chunks that bound memory: a MatMul's leading dims flattened; a Conv's output pixels' patches
    (zero where the window leaves the image), one image at a time, K ordered as the matrix view."""
    if layer.conv is None:
        yield activation.reshape(-1, activation.shape[-1])
        return
    geometry = layer.conv
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.strides, geometry.dilations
    top, left, bottom, right = geometry.pads
    for image in activation:
        channels, height, width = image.shape
        padded = np.pad(image, ((0, 0), (top, bottom), (left, right)))
        out_h = (height + top + bottom - dh * (kh - 1) - 1) // sh + 1
        out_w = (width + left + right - dw * (kw - 1) - 1) // sw + 1
        taps = [
            padded[
                :,
                i * dh : i * dh + sh * (out_h - 1) + 1 : sh,
                j * dw : j * dw + sw * (out_w - 1) + 1 : sw,
            ]
            for i in range(kh)
            for j in range(kw)
        ]
        # [taps, C, OH, OW] -> [OH * OW, taps * C], channels fastest.
        yield np.stack(taps).transpose(2, 3, 0, 1).reshape(out_h * out_w, kh * kw * channels)
