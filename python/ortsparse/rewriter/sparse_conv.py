"""The SparseConv node the rewriter emits (contract: docs/ops.md), as a value rules can edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
from onnx import numpy_helper

from ortsparse import OP_DOMAIN
from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import Activation, SparseOp


def _prefixed(prefix: str, attributes: dict) -> dict:
    return {prefix + name: value for name, value in attributes.items()}


def _unprefixed(prefix: str, attributes: dict) -> dict:
    """The attributes whose names start with ``prefix``, by the rest of their names."""
    return {
        name.removeprefix(prefix): value
        for name, value in attributes.items()
        if name.startswith(prefix)
    }


@dataclass(frozen=True, eq=False)
class DepthwisePrologue:
    """A depthwise convolution of the SparseConv's X, whose output (bias and activation applied)
    the op's 1x1 product takes instead of X itself: weight [C, 1, kH, kW], bias [C]."""

    PREFIX: ClassVar[str] = "depthwise_"

    weight: np.ndarray
    bias: np.ndarray
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    activation: Activation = Activation()

    @property
    def kernel_shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape[2:])

    def attributes(self) -> dict:
        return _prefixed(
            self.PREFIX,
            {
                "kernel_shape": list(self.kernel_shape),
                "strides": list(self.strides),
                "dilations": list(self.dilations),
                "pads": list(self.pads),
                "weight": numpy_helper.from_array(self.weight.astype(np.float32)),
                "bias": numpy_helper.from_array(self.bias.astype(np.float32)),
                **self.activation.attributes(),
            },
        )

    @classmethod
    def from_attributes(cls, attributes: dict) -> DepthwisePrologue | None:
        own = _unprefixed(cls.PREFIX, attributes)
        if "kernel_shape" not in own:
            return None
        return cls(
            weight=numpy_helper.to_array(own["weight"]),
            bias=numpy_helper.to_array(own["bias"]),
            strides=tuple(own["strides"]),
            dilations=tuple(own["dilations"]),
            pads=tuple(own["pads"]),
            activation=Activation.from_attributes(own),
        )


@dataclass(frozen=True, eq=False)
class PointwisePrologue:
    """A sparse 1x1 convolution of the SparseConv's X (stride 1, no padding), whose output (bias
    and activation applied) the op's product takes instead of X itself: its [K, N] weight packed
    as SparseConv's is (values, group offsets, input indices in ``format``), N the product's C,
    bias [N]."""

    PREFIX: ClassVar[str] = "pointwise_"

    k: int
    n: int
    format: str
    values: np.ndarray
    group_offsets: np.ndarray
    input_indices: np.ndarray
    bias: np.ndarray
    activation: Activation = Activation()

    def attributes(self) -> dict:
        return _prefixed(
            self.PREFIX,
            {
                "K": self.k,
                "N": self.n,
                "format": self.format,
                "weight_values": numpy_helper.from_array(self.values.astype(np.float32)),
                "weight_group_offsets": numpy_helper.from_array(
                    self.group_offsets.astype(np.int32)
                ),
                "weight_input_indices": numpy_helper.from_array(
                    self.input_indices.astype(np.int32)
                ),
                "bias": numpy_helper.from_array(self.bias.astype(np.float32)),
                **self.activation.attributes(),
            },
        )

    @classmethod
    def from_attributes(cls, attributes: dict) -> PointwisePrologue | None:
        own = _unprefixed(cls.PREFIX, attributes)
        if "K" not in own:
            return None
        return cls(
            k=own["K"],
            n=own["N"],
            format=own["format"].decode(),
            values=numpy_helper.to_array(own["weight_values"]),
            group_offsets=numpy_helper.to_array(own["weight_group_offsets"]),
            input_indices=numpy_helper.to_array(own["weight_input_indices"]),
            bias=numpy_helper.to_array(own["bias"]),
            activation=Activation.from_attributes(own),
        )


@dataclass(frozen=True, kw_only=True)
class SparseConv(SparseOp):
    """Y = epilogue(conv2d(X, W)), NCHW, W [N, C, kH, kW] packed as the [K, N] matrix
    Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]. With output_channel_groups A, Y is
    [B, A, OH, OW, N / A] instead: the NCHW result reshaped to [B, A, N / A, OH, OW] and
    transposed to put each group's channels last. X's channels may come in parts: X and then
    x_parts, as a Concat along the channels would join them, which the op reads in place. With
    output_split S, Y holds channels [0, S) and output_2 the others. With a depthwise prologue,
    the 1x1 product takes the depthwise convolution of X instead of X; with a pointwise one, the
    product takes a sparse 1x1 convolution of X, which the op computes band by band."""

    OP_TYPE = "SparseConv"
    ACTIVATIONS = SparseGemm.ACTIVATIONS | {"leaky_relu", "hard_swish"}
    CHANNEL_AXIS = 1

    c: int
    kernel_shape: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    output_channel_groups: int = 0  # 0: NCHW output
    x_parts: tuple[str, ...] = ()  # more of X's channels, after X's own
    output_split: int = 0  # 0: one output
    output_2: str = ""
    depthwise: DepthwisePrologue | None = None
    pointwise: PointwisePrologue | None = None

    # Parts of X the op takes besides X itself (inputs 6-8).
    MAX_MORE_X_PARTS: ClassVar[int] = 3

    def more_inputs(self) -> list[str]:
        return list(self.x_parts)

    def more_outputs(self) -> list[str]:
        return [self.output_2] if self.output_2 else []

    @classmethod
    def from_node(cls, node: onnx.NodeProto) -> SparseConv:
        return (
            super()
            .from_node(node)
            .replace(
                x_parts=tuple(node.input[6:]),
                output_2=node.output[1] if len(node.output) > 1 else "",
            )
        )

    def channels_on_axis(self) -> bool:
        return self.output_channel_groups == 0

    def op_attributes(self) -> dict:
        attributes = {
            **super().op_attributes(),
            "C": self.c,
            "kernel_shape": list(self.kernel_shape),
            "strides": list(self.strides),
            "dilations": list(self.dilations),
            "pads": list(self.pads),
            "group": 1,
        }
        if self.output_channel_groups:
            attributes["output_channel_groups"] = self.output_channel_groups
        if self.output_split:
            attributes["output_split"] = self.output_split
        if self.depthwise is not None:
            attributes.update(self.depthwise.attributes())
        if self.pointwise is not None:
            attributes.update(self.pointwise.attributes())
        return attributes

    @classmethod
    def fields_from_attributes(cls, attributes: dict) -> dict:
        return {
            "c": attributes["C"],
            "kernel_shape": tuple(attributes["kernel_shape"]),
            "strides": tuple(attributes["strides"]),
            "dilations": tuple(attributes["dilations"]),
            "pads": tuple(attributes["pads"]),
            "output_channel_groups": attributes.get("output_channel_groups", 0),
            "output_split": attributes.get("output_split", 0),
            "depthwise": DepthwisePrologue.from_attributes(attributes),
            "pointwise": PointwisePrologue.from_attributes(attributes),
        }


def sparse_conv_of(node: onnx.NodeProto, ops: set[str]) -> SparseConv | None:
    """``node`` as a SparseConv where it is one and named in ``ops`` (the rewrite's own)."""
    if node.domain != OP_DOMAIN or node.op_type != SparseConv.OP_TYPE or node.name not in ops:
        return None
    return SparseConv.from_node(node)
