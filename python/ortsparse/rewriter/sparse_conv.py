"""The SparseConv node the rewriter emits (contract: docs/ops.md), as a value rules can edit."""

from __future__ import annotations

from dataclasses import dataclass

from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import SparseOp


@dataclass(frozen=True, kw_only=True)
class SparseConv(SparseOp):
    """Y = epilogue(conv2d(X, W)), NCHW, W [N, C, kH, kW] packed as the [K, N] matrix
    Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]."""

    OP_TYPE = "SparseConv"
    ACTIVATIONS = SparseGemm.ACTIVATIONS | {"leaky_relu", "hard_swish"}
    CHANNEL_AXIS = 1

    c: int
    kernel_shape: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right

    def op_attributes(self) -> dict:
        return {
            **super().op_attributes(),
            "C": self.c,
            "kernel_shape": list(self.kernel_shape),
            "strides": list(self.strides),
            "dilations": list(self.dilations),
            "pads": list(self.pads),
            "group": 1,
        }

    @classmethod
    def fields_from_attributes(cls, attributes: dict) -> dict:
        return {
            "c": attributes["C"],
            "kernel_shape": tuple(attributes["kernel_shape"]),
            "strides": tuple(attributes["strides"]),
            "dilations": tuple(attributes["dilations"]),
            "pads": tuple(attributes["pads"]),
        }
