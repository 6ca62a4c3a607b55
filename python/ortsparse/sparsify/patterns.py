"""Sparsity patterns: which weights may be zeroed together, as the kernels store them.

Every pattern is defined on a layer's weight matrix W [N, K] (output channels x input features;
a MatMul's [K, N] weight transposed, a Conv's [N, C, kH, kW] weight with K ordered tap by tap,
channels fastest, see layers.py), as groups of entries that are kept or zeroed whole:

* ``unstructured``: single weights (SparseGemm's and SparseConv's csr format);
* ``4x1``: 4 consecutive output channels at one input feature (their block4 format, Intel Neural
  Compressor's "4x1");
* ``1x4``: 4 consecutive input features of one output channel, for a Conv 4 channels at one tap:
  the quads that the INT8 kernels store (SparseQGemm's quad4 format);
* ``RxC`` more generally, R output channels by C input features with R and C in 1, 2, 4, 8, 16
  (Neural Compressor's 2x1, 4x16, ...): a multiple of 4 rows runs as block4, else a multiple of 4
  columns as INT8 quads, else csr (Pattern.kernel_format);
* ``N:M`` (e.g. ``2:4``): in every run of M consecutive input features of one output channel, N
  are kept; the csr kernels run it (no kernel of ours gains from the regularity), and its sparsity
  is 1 - N/M whatever target is asked for.

A group that runs past the matrix's edge (N or K not a multiple of 4) is shorter; it is ranked by
the entries it has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

GROUP = 4
BLOCK_SIDES = {1, 2, 4, 8, 16}


@dataclass(frozen=True)
class Pattern:
    name: str
    rows: int = 1  # output channels per group
    columns: int = 1  # input features per group
    keep_of_run: tuple[int, int] | None = None  # N:M: keep N of every M input features

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity an N:M pattern always has; None where the target decides."""
        if self.keep_of_run is None:
            return None
        kept, run = self.keep_of_run
        return 1.0 - kept / run

    @property
    def kernel_format(self) -> str:
        """The packed format that stores a weight of this pattern best (docs/ops.md): whole
        4-channel blocks for block4, whole 4-feature quads for the INT8 kernels' quad4."""
        if self.keep_of_run is None and self.rows % GROUP == 0:
            return "block4"
        if self.keep_of_run is None and self.columns % GROUP == 0:
            return "quad4 (INT8; csr in FP32)"
        return "csr"


UNSTRUCTURED = Pattern("unstructured")
OUTPUT_BLOCKS = Pattern("4x1", rows=GROUP)
INPUT_QUADS = Pattern("1x4", columns=GROUP)
_NAMED = {pattern.name: pattern for pattern in (UNSTRUCTURED, OUTPUT_BLOCKS, INPUT_QUADS)}


def parse_pattern(text: str) -> Pattern:
    """``unstructured``, ``RxC`` (R output channels by C input features, each 1, 2, 4, 8 or 16:
    ``4x1``, ``1x4``, Neural Compressor's ``2x1`` and ``4x16``...) or ``N:M`` (0 < N < M <= 64);
    ValueError otherwise."""
    if text in _NAMED:
        return _NAMED[text]
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match and {int(match[1]), int(match[2])} <= BLOCK_SIDES:
        rows, columns = int(match[1]), int(match[2])
        return UNSTRUCTURED if rows == columns == 1 else Pattern(text, rows=rows, columns=columns)
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if match:
        kept, run = int(match[1]), int(match[2])
        if 0 < kept < run <= 64:
            return Pattern(text, keep_of_run=(kept, run))
    raise ValueError(
        f"unknown sparsity pattern {text!r}: expected unstructured, RxC with R and C in "
        "1, 2, 4, 8, 16 (e.g. 4x1, 1x4, 4x16) or N:M (e.g. 2:4, with 0 < N < M <= 64)"
    )


def mask_dropping_smallest(scores: np.ndarray, drop: int) -> np.ndarray:
    """Boolean keep-mask of `scores`' shape that drops its `drop` lowest entries."""
    flat = scores.ravel()
    keep = np.ones(flat.size, dtype=bool)
    if drop > 0:
        # A partial selection, not a full sort: weights run to millions of entries.
        keep[np.argpartition(flat, drop - 1)[:drop]] = False
    return keep.reshape(scores.shape)


def group_scores(scores: np.ndarray, pattern: Pattern) -> np.ndarray:
    """Per-entry scores [N, K] summed over each group of `pattern` (N:M: per entry)."""
    if pattern.keep_of_run is not None or (pattern.rows, pattern.columns) == (1, 1):
        return scores
    n, k = scores.shape
    rows = -(-n // pattern.rows) * pattern.rows
    columns = -(-k // pattern.columns) * pattern.columns
    padded = np.zeros((rows, columns), dtype=np.float64)
    padded[:n, :k] = scores
    return padded.reshape(
        rows // pattern.rows, pattern.rows, columns // pattern.columns, pattern.columns
    ).sum(axis=(1, 3))


def expand_groups(group_keep: np.ndarray, pattern: Pattern, shape: tuple[int, int]) -> np.ndarray:
    """A keep-mask per group back to one per entry of a [N, K] matrix."""
    expanded = np.repeat(np.repeat(group_keep, pattern.rows, axis=0), pattern.columns, axis=1)
    return expanded[: shape[0], : shape[1]]


def keep_mask(scores: np.ndarray, sparsity: float, pattern: Pattern) -> np.ndarray:
    """Which entries of a [N, K] matrix to keep, dropping the lowest-scoring groups: the
    round(sparsity * groups) lowest for a target, or the lowest M - N of every run for N:M."""
    if pattern.keep_of_run is not None:
        kept, run = pattern.keep_of_run
        n, k = scores.shape
        columns = -(-k // run) * run
        # Padding columns score lowest: a short last run drops them first and keeps N of its own
        # entries (all of them, when it has fewer).
        padded = np.full((n, columns), -np.inf)
        padded[:, :k] = scores
        runs = padded.reshape(n, columns // run, run)
        ranks = np.argsort(np.argsort(runs, axis=-1, kind="stable"), axis=-1, kind="stable")
        return (ranks >= run - kept).reshape(n, columns)[:, :k]
    grouped = group_scores(scores, pattern)
    drop = int(round(sparsity * grouped.size))
    return expand_groups(mask_dropping_smallest(grouped, drop), pattern, scores.shape)


def magnitude_prune(matrix: np.ndarray, sparsity: float, pattern: Pattern) -> np.ndarray:
    """`matrix` [N, K] with its smallest-magnitude groups zeroed (groups ranked by the sum of
    their squared entries, an L2 norm)."""
    keep = keep_mask(np.square(matrix.astype(np.float64)), sparsity, pattern)
    return np.where(keep, matrix, 0).astype(matrix.dtype)


def follows_pattern(matrix: np.ndarray, pattern: Pattern) -> bool:
    """Whether pruning to `pattern` could have made [N, K] `matrix` from a weight with no zeros of
    its own: every group all zero or all nonzero (N:M: at most N nonzeros in every run of M)."""
    nonzero = matrix != 0
    if pattern.keep_of_run is not None:
        kept, run = pattern.keep_of_run
        n, k = matrix.shape
        padded = np.zeros((n, -(-k // run) * run), dtype=bool)
        padded[:, :k] = nonzero
        return bool((padded.reshape(n, -1, run).sum(axis=-1) <= kept).all())
    nonzeros = group_scores(nonzero.astype(np.float64), pattern)
    sizes = group_scores(np.ones(matrix.shape), pattern)
    return bool(((nonzeros == 0) | (nonzeros == sizes)).all())
