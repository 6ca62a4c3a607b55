"""What the rewriter decided for each MatMul/Gemm/Conv, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

#: Decision.format of a node that was not rewritten.
NO_FORMAT = "-"


@dataclass(frozen=True)
class Refusal:
    """Why a node cannot be rewritten, as the rewriter's helpers return it in place of what they
    were asked for; it reads as its reason."""

    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class Decision:
    """One MatMul, Gemm or Conv of the input model and what became of it.

    ``fused`` names, in graph order, what was folded into the SparseGemm/SparseConv epilogue: op
    types for single ops ("BatchNormalization", "Add", "Relu", "Clip", "Sigmoid", "Gelu",
    "LeakyRelu", "HardSwish", "Gelu (com.microsoft)" for ONNX Runtime's Gelu and FastGelu) and the
    function computed for multi-node patterns ("SiLU", "Gelu(erf)", "Gelu(tanh)", "HardSwish"
    for x * HardSigmoid(x)).
    """

    node_name: str
    op_type: str
    weight_shape: tuple[int, int] | None  # (K, N) (Conv: C*kH*kW, Cout); None when unknown
    sparsity: float | None  # fraction of zero weights; None when the weight is not a constant
    format: str  # "csr", "block4", or NO_FORMAT
    rewritten: bool
    reason: str
    fused: list[str] = field(default_factory=list)
    # What verification measured on this CPU for the part of the graph holding this node.
    measured: str = ""


@dataclass
class RewriteResult:
    model: onnx.ModelProto
    decisions: list[Decision]
    # What decided: the cost model's data and where it comes from, or the min-sparsity threshold.
    decided_by: str = ""

    @property
    def rewritten_count(self) -> int:
        return sum(decision.rewritten for decision in self.decisions)
