"""Decides, per constant weight, whether SparseGemm or SparseConv pays off and in which format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ortsparse.rewriter.cost_model import FORMATS, ConservativeCostModel, ConvWork, CostModel
from ortsparse.rewriter.decisions import Decision
from ortsparse.rewriter.packing import count_compiled_input_loads, count_stored_blocks
from ortsparse.rewriter.quad_packing import stored_quad_fraction

# SparseQGemm against ORT's dense INT8 product (QLinearMatMul), 2 threads, AVX-512 VNNI: at M=64
# and 128 rows and K, N of 768 to 3072 it broke even between 30% (M=64) and 50% (M=128) of the
# quads stored, and was 1.6-3.2x faster at 10%. Until INT8 has a measured cost model of its own,
# weights are rewritten at or below the lower break-even; SparseQConv, which runs the same tile
# kernels, takes the same threshold (not measured for convolutions on their own).
QUANTIZED_MAX_STORED_QUADS = 0.3

# How the reasons of the cost model's verdicts begin.
_PREDICTED = "predicted "


@dataclass(frozen=True)
class Verdict:
    rewrite: bool
    format: str  # the format to pack in (the cost model's choice even when not rewriting)
    sparsity: float
    reason: str


def kept_by_prediction(decision: Decision) -> bool:
    """Whether the cost model's prediction kept ``decision``'s node (not a min-sparsity threshold,
    an INT8 verdict or a node the rewriter cannot convert)."""
    return not decision.rewritten and decision.reason.startswith(_PREDICTED)


class SparsityPolicy:
    """The cost model's verdict, or with ``min_sparsity`` a plain threshold on the zero fraction
    (the format is still the one the cost model predicts faster)."""

    def __init__(
        self,
        cost_model: CostModel | ConservativeCostModel,
        conv_cost_model: CostModel | ConservativeCostModel,
        min_sparsity: float | None = None,
    ):
        self.cost_model = cost_model  # MatMul/Gemm against SparseGemm
        self.conv_cost_model = conv_cost_model  # Conv against SparseConv
        self.min_sparsity = min_sparsity

    def converting_all(self) -> SparsityPolicy:
        """This policy, converting what it would keep (its reason says so) for verification to
        time with what the new node fuses; INT8 verdicts stay as they are."""
        return _ConvertingPolicy(self.cost_model, self.conv_cost_model, self.min_sparsity)

    def judge(self, weight: np.ndarray, m: int) -> Verdict:
        """The verdict on SparseGemm for ``weight`` [K, N] applied to ``m`` rows."""
        return self._judge(self.cost_model, weight, m)

    def judge_conv(
        self, weight: np.ndarray, m: int, work: ConvWork, sparsity: float | None = None
    ) -> Verdict:
        """The verdict on SparseConv for the matrix view ``weight`` [K, N] at ``m`` output
        pixels, ``work`` being what SparseConv computes besides. ``sparsity``: the Conv's own
        weight's, where it differs from the matrix's (a grouped Conv's block-diagonal matrix)."""
        return self._judge(self.conv_cost_model, weight, m, work, sparsity)

    def judge_quantized(self, weight: np.ndarray) -> Verdict:
        """The verdict on SparseQGemm or SparseQConv for the int8 ``weight`` [K, N] (a conv's quad
        matrix): the fraction of its quads (4 consecutive input features of one output column)
        that hold a nonzero weight is the kernel's share of the dense work."""
        sparsity = 1.0 - np.count_nonzero(weight) / weight.size
        stored = stored_quad_fraction(weight)
        if self.min_sparsity is not None:
            rewrite = sparsity >= self.min_sparsity
            comparison = ">=" if rewrite else "<"
            reason = f"sparsity {sparsity:.1%} {comparison} min-sparsity {self.min_sparsity:.1%}"
        else:
            rewrite = stored <= QUANTIZED_MAX_STORED_QUADS
            comparison = "<=" if rewrite else ">"
            reason = (
                f"{stored:.0%} of its quads hold a weight, {comparison} the "
                f"{QUANTIZED_MAX_STORED_QUADS:.0%} where the sparse INT8 kernels beat dense INT8"
            )
        return Verdict(rewrite, "quad4", sparsity, reason)

    def _judge(
        self,
        cost_model: CostModel | ConservativeCostModel,
        weight: np.ndarray,
        m: int,
        conv: ConvWork | None = None,
        sparsity: float | None = None,
    ) -> Verdict:
        k, n = weight.shape
        if sparsity is None:
            sparsity = 1.0 - np.count_nonzero(weight) / weight.size
        stored_blocks = {format: count_stored_blocks(weight, format) for format in FORMATS}
        input_loads = count_compiled_input_loads(weight) if conv is not None else 0
        prediction = cost_model.predict(m, k, n, stored_blocks, conv, input_loads)
        if self.min_sparsity is not None:
            rewrite = sparsity >= self.min_sparsity
            comparison = ">=" if rewrite else "<"
            reason = f"sparsity {sparsity:.1%} {comparison} min-sparsity {self.min_sparsity:.1%}"
        elif prediction.sparse_wins:
            rewrite = True
            reason = f"predicted {prediction.speedup:.2f}x faster than dense at M={m}"
            if prediction.required_speedup > 1:
                reason += " by every measured CPU's data"
        elif prediction.speedup > 1:
            # Only a conservative prediction keeps a layer predicted faster.
            rewrite = False
            reason = (
                f"{_PREDICTED}only {prediction.speedup:.2f}x faster than dense at M={m} by the "
                f"least favourable measured CPU's data, short of the "
                f"{prediction.required_speedup:.2f}x asked without data for this CPU"
            )
        else:
            rewrite = False
            break_even = cost_model.break_even_sparsity(m, k, n, prediction.format, conv)
            if conv is not None:
                # A grouped Conv's own weight is `groups` times denser than its matrix.
                break_even = max(0.0, 1.0 - (1.0 - break_even) * conv.groups)
            reason = (
                f"{_PREDICTED}{1 / prediction.speedup:.2f}x slower than dense at M={m} "
                f"({prediction.format} breaks even near {break_even:.0%} sparsity)"
            )
        return Verdict(rewrite, prediction.format, sparsity, reason)


class _ConvertingPolicy(SparsityPolicy):
    def _judge(self, *args, **kwargs) -> Verdict:
        verdict = super()._judge(*args, **kwargs)
        if verdict.rewrite:
            return verdict
        reason = f"{verdict.reason}; converted to be timed with what it fuses"
        return dataclasses.replace(verdict, rewrite=True, reason=reason)
