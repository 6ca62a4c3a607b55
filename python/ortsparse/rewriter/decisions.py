"""What the rewriter decided for each MatMul/Gemm, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

#: Decision.format of a node that was not rewritten.
NO_FORMAT = "-"


@dataclass
class Decision:
    """One MatMul or Gemm of the input model and what became of it.

    ``fused`` names, in graph order, what was folded into the SparseGemm epilogue: op types for
    single ops ("Add", "Relu", "Clip", "Sigmoid", "Gelu") and the function computed for
    multi-node patterns ("SiLU", "Gelu(erf)", "Gelu(tanh)").
    """

    node_name: str
    op_type: str
    weight_shape: tuple[int, int] | None  # (K, N); None when the weight's shape is unknown
    sparsity: float | None  # fraction of zero weights; None when the weight is not a constant
    format: str  # "csr", "block4", or NO_FORMAT
    rewritten: bool
    reason: str
    fused: list[str] = field(default_factory=list)


@dataclass
class RewriteResult:
    model: onnx.ModelProto
    decisions: list[Decision]

    @property
    def rewritten_count(self) -> int:
        return sum(decision.rewritten for decision in self.decisions)
