"""What SparseGemm and SparseConv nodes share (contract: docs/ops.md), as values rules can edit.

Both ops take X and a packed weight, and add the same epilogue: bias, activation, residual. The
epilogue rules only see this common part; each op says which activations its kernel has and along
which axis of its output the channels (bias entries) lie.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ortsparse import OP_DOMAIN
from ortsparse.rewriter.graph import attribute_values

DOMAIN = OP_DOMAIN
OPSET_VERSION = 1

NO_ACTIVATION = "none"

LEAKY_RELU_DEFAULT_ALPHA = 0.01  # ONNX LeakyRelu's default slope, also the kernel's


@dataclass(frozen=True)
class Activation:
    name: str = NO_ACTIVATION
    clip_min: float = -math.inf
    clip_max: float = math.inf
    alpha: float = LEAKY_RELU_DEFAULT_ALPHA  # leaky_relu's slope for negative inputs

    def attributes(self) -> dict:
        """The node attributes that set this activation (its parameters only where it has any)."""
        attributes = {"activation": self.name}
        if self.name == "clip":
            attributes.update(clip_min=self.clip_min, clip_max=self.clip_max)
        elif self.name == "leaky_relu":
            attributes["alpha"] = self.alpha
        return attributes

    @classmethod
    def from_attributes(cls, attributes: dict) -> Activation:
        return cls(
            name=attributes.get("activation", NO_ACTIVATION.encode()).decode(),
            clip_min=attributes.get("clip_min", -math.inf),
            clip_max=attributes.get("clip_max", math.inf),
            alpha=attributes.get("alpha", LEAKY_RELU_DEFAULT_ALPHA),
        )


@dataclass(frozen=True, eq=False)
class OutputAffine:
    """y * scale + shift after the activation, per output channel: [N] float32 each."""

    scale: np.ndarray
    shift: np.ndarray

    @classmethod
    def identity(cls, channels: int) -> OutputAffine:
        """Scale 1 and shift 0: what an op without an output affine applies."""
        return cls(np.ones(channels, np.float32), np.zeros(channels, np.float32))

    def attributes(self) -> dict:
        return {
            "output_scale": numpy_helper.from_array(self.scale.astype(np.float32)),
            "output_shift": numpy_helper.from_array(self.shift.astype(np.float32)),
        }

    @classmethod
    def from_attributes(cls, attributes: dict) -> OutputAffine | None:
        if "output_scale" not in attributes:
            return None
        return cls(
            numpy_helper.to_array(attributes["output_scale"]),
            numpy_helper.to_array(attributes["output_shift"]),
        )


@dataclass(frozen=True)
class SparseOp:
    """Y = act(op(X, W) + bias) * scale + shift + residual; act(op(X, W) + bias + residual) *
    scale + shift if residual_before_activation, where scale and shift are the output affine's
    (else 1 and 0). Subclasses add the op's own attributes."""

    OP_TYPE: ClassVar[str]
    ACTIVATIONS: ClassVar[frozenset[str]]  # what the op's kernel can fuse
    CHANNEL_AXIS: ClassVar[int]  # the output axis of the N channels, which the bias runs along

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
    output_affine: OutputAffine | None = None

    def replace(self, **changes) -> SparseOp:
        return dataclasses.replace(self, **changes)

    def to_node(self) -> onnx.NodeProto:
        inputs = [
            self.x,
            self.weight_values,
            self.weight_group_offsets,
            self.weight_input_indices,
            self.bias,
            self.residual,
            *self.more_inputs(),
        ]
        while inputs[-1] == "":  # optional inputs at the end are left out, not named ""
            inputs.pop()
        attributes = {
            **self.op_attributes(),
            "format": self.format,
            **self.activation.attributes(),
        }
        if self.output_affine is not None:
            attributes.update(self.output_affine.attributes())
        if self.residual:
            attributes["residual_before_activation"] = int(self.residual_before_activation)
        outputs = [self.output, *self.more_outputs()]
        return helper.make_node(
            self.OP_TYPE, inputs, outputs, name=self.name, domain=DOMAIN, **attributes
        )

    def more_inputs(self) -> list[str]:
        """The subclass's own inputs, after the residual."""
        return []

    def more_outputs(self) -> list[str]:
        """The subclass's own outputs, after Y."""
        return []

    def channels_on_axis(self) -> bool:
        """Whether the output's channels lie along CHANNEL_AXIS, as the bias, BatchNormalization
        and residual fusions require."""
        return True

    def op_attributes(self) -> dict:
        """The attributes that describe the product itself (not the epilogue)."""
        return {"K": self.k, "N": self.n}

    @classmethod
    def from_node(cls, node: onnx.NodeProto) -> SparseOp:
        attributes = attribute_values(node)
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
            activation=Activation.from_attributes(attributes),
            residual_before_activation=bool(attributes.get("residual_before_activation", 0)),
            output_affine=OutputAffine.from_attributes(attributes),
            **cls.fields_from_attributes(attributes),
        )

    @classmethod
    def fields_from_attributes(cls, attributes: dict) -> dict:
        """The subclass's own fields, read back from the node's attributes."""
        return {}

    def bias_from(self, value: np.ndarray, output_rank: int) -> np.ndarray | None:
        """``value`` as the bias [N] when adding it to the output broadcasts like a bias
        (along_channels), else None."""
        return along_channels(value, self.n, self.CHANNEL_AXIS, output_rank)


def along_channels(
    value: np.ndarray, channels: int, channel_axis: int, output_rank: int
) -> np.ndarray | None:
    """``value`` as [channels] float32 where it broadcasts over an output of ``output_rank``
    dims along ``channel_axis`` alone, else None: only that axis may differ from 1 (and then
    equals ``channels``), and it has no more dims than the output, whose shape it would
    otherwise grow."""
    if value.dtype != np.float32 or value.ndim > output_rank or value.size not in (1, channels):
        return None
    aligned_shape = (1,) * (output_rank - value.ndim) + value.shape  # as numpy broadcasts it
    channel_axis %= output_rank
    if any(dim != 1 for axis, dim in enumerate(aligned_shape) if axis != channel_axis):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float32)
