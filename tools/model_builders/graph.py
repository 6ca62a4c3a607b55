"""A small helper for writing ONNX graphs node by node, the way exporters name things."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import ModelVersions, newest_model_versions


class GraphBuilder:
    """Collects nodes and initializers; every node gets a unique, exporter-style path name. The
    model is written at `versions`, by default the newest the installed onnxruntime runs (the
    nodes are written in forms that every opset from 17 on reads alike)."""

    def __init__(self, name: str, versions: ModelVersions | None = None):
        self.name = name
        self.versions = versions
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._used_names: set[str] = set()

    def _unique(self, name: str) -> str:
        candidate, suffix = name, 1
        while candidate in self._used_names:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        self._used_names.add(candidate)
        return candidate

    def initializer(self, name: str, value: np.ndarray) -> str:
        name = self._unique(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        """A Constant node, which is how torch.onnx writes the scalars and shapes of a forward pass
        (parameters become initializers), so consumers of these models must handle both."""
        return self.node("Constant", [], name, value=numpy_helper.from_array(np.asarray(value)))

    def scalar(self, name: str, value: float) -> str:
        return self.constant(name, np.array(value, dtype=np.float32))

    def int64s(self, name: str, values: Sequence[int]) -> str:
        return self.constant(name, np.array(values, dtype=np.int64))

    def node(self, op_type: str, inputs: Sequence[str], name: str, **attributes) -> str:
        """Adds a single-output node named `name`; returns its output, `<name>_output_0`."""
        name = self._unique(name)
        output = f"{name}_output_0"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [output], name=name, **attributes)
        )
        return output

    def _contrib_domains(self) -> list[str]:
        return sorted({node.domain for node in self.nodes if node.domain})

    def _rename_output(self, tensor: str, new_name: str) -> None:
        for node in self.nodes:
            node.output[:] = [new_name if out == tensor else out for out in node.output]
            node.input[:] = [new_name if inp == tensor else inp for inp in node.input]

    def build(
        self,
        inputs: Sequence[onnx.ValueInfoProto],
        result: str,
        output_name: str,
        output_shape: Sequence[int | str],
    ) -> onnx.ModelProto:
        """Checked model whose single float output is the tensor `result`, renamed `output_name`."""
        self._rename_output(result, output_name)
        graph = helper.make_graph(
            self.nodes,
            self.name,
            list(inputs),
            [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, list(output_shape))],
            initializer=self.initializers,
        )
        versions = self.versions or newest_model_versions()
        model = versions.make_model(
            graph,
            [(domain, 1) for domain in self._contrib_domains()],
            producer_name="ortsparse.model_builders",
        )
        onnx.checker.check_model(model)
        return model


def float_input(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def torch_scope(prefix: str) -> str:
    """Torch's node scope of a module path: layer1.0.downsample.0 -> /layer1/layer1.0/downsample/
    downsample.0 (an index inside a Sequential is written joined to the container's name)."""
    parts = prefix.split(".")
    scopes = [
        f"{parts[index - 1]}.{part}" if part.isdigit() and index else part
        for index, part in enumerate(parts)
    ]
    return "/" + "/".join(scopes)
