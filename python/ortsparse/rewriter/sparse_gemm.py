"""The SparseGemm node the rewriter emits (contract: docs/ops.md), as a value rules can edit."""

from __future__ import annotations

from dataclasses import dataclass

from ortsparse.rewriter.sparse_op import SparseOp


@dataclass(frozen=True)
class SparseGemm(SparseOp):
    """Y = epilogue(X·W), X [..., K], W [K, N], Y [..., N]."""

    OP_TYPE = "SparseGemm"
    ACTIVATIONS = frozenset({"none", "relu", "clip", "gelu", "gelu_tanh", "sigmoid", "silu"})
    CHANNEL_AXIS = -1
