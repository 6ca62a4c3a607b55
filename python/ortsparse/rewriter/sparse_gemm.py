"""The SparseGemm node the rewriter emits (contract: docs/ops.md), as a value rules can edit."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

DOMAIN = "ortsparse"
OPSET_VERSION = 1
OP_TYPE = "SparseGemm"

NO_ACTIVATION = "none"


@dataclass(frozen=True)
class Activation:
    name: str = NO_ACTIVATION  # none, relu, clip, gelu, gelu_tanh, sigmoid, silu
    clip_min: float = -math.inf
    clip_max: float = math.inf


@dataclass(frozen=True)
class SparseGemm:
    """Y = act(X·W + bias) + residual; act(X·W + bias + residual) if residual_before_activation."""

    name: str
    x: str
    weight_values: str
    weight_group_offsets: str
    weight_input_indices: str
    k: int
    n: int
    format: str  # "csr" or "block4"
    output: str
    bias: str = ""
    residual: str = ""
    activation: Activation = Activation()
    residual_before_activation: bool = False

    def replace(self, **changes) -> SparseGemm:
        return dataclasses.replace(self, **changes)

    def to_node(self) -> onnx.NodeProto:
        inputs = [
            self.x,
            self.weight_values,
            self.weight_group_offsets,
            self.weight_input_indices,
            self.bias,
        ]
        if self.residual:
            inputs.append(self.residual)
        while inputs[-1] == "":  # optional inputs at the end are left out, not named ""
            inputs.pop()
        attributes = {
            "K": self.k,
            "N": self.n,
            "format": self.format,
            "activation": self.activation.name,
        }
        if self.activation.name == "clip":
            attributes.update(clip_min=self.activation.clip_min, clip_max=self.activation.clip_max)
        if self.residual:
            attributes["residual_before_activation"] = int(self.residual_before_activation)
        return helper.make_node(
            OP_TYPE, inputs, [self.output], name=self.name, domain=DOMAIN, **attributes
        )

    @classmethod
    def from_node(cls, node: onnx.NodeProto) -> SparseGemm:
        attributes = {
            attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute
        }
        inputs = [*node.input, "", ""]
        return cls(
            name=node.name,
            x=inputs[0],
            weight_values=inputs[1],
            weight_group_offsets=inputs[2],
            weight_input_indices=inputs[3],
            bias=inputs[4],
            residual=inputs[5],
            k=attributes["K"],
            n=attributes["N"],
            format=attributes["format"].decode(),
            output=node.output[0],
            activation=Activation(
                name=attributes.get("activation", NO_ACTIVATION.encode()).decode(),
                clip_min=attributes.get("clip_min", -math.inf),
                clip_max=attributes.get("clip_max", math.inf),
            ),
            residual_before_activation=bool(attributes.get("residual_before_activation", 0)),
        )


def is_sparse_gemm(node: onnx.NodeProto) -> bool:
    return node.op_type == OP_TYPE and node.domain == DOMAIN


def as_bias(value: np.ndarray, n: int, max_rank: int) -> np.ndarray | None:
    """``value`` as SparseGemm's bias [N] when adding it broadcasts like a bias: only its last dim
    may differ from 1 (and then equals N), and it has no more dims than the output, whose shape it
    would otherwise grow. None otherwise."""
    if value.dtype != np.float32 or value.ndim > max_rank or value.size not in (1, n):
        return None
    if any(dim != 1 for dim in value.shape[:-1]):
        return None
    return np.broadcast_to(value.reshape(-1), (n,)).astype(np.float32)
