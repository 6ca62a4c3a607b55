"""The SparseConv node the rewriter emits (contract: docs/ops.md), as a value rules can edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import onnx

from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import SparseOp


@dataclass(frozen=True, kw_only=True)
class SparseConv(SparseOp):
    """Y = epilogue(conv2d(X, W)), NCHW, W [N, C, kH, kW] packed as the [K, N] matrix
    Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]. With output_channel_groups A, Y is
    [B, A, OH, OW, N / A] instead: the NCHW result reshaped to [B, A, N / A, OH, OW] and
    transposed to put each group's channels last. X's channels may come in parts: X and then
    x_parts, as a Concat along the channels would join them, which the op reads in place. With
    output_split S, Y holds channels [0, S) and output_2 the others."""

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
        }
