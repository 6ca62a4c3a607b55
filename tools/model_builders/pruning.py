"""One-shot magnitude pruning of a MatMul weight stored [K, N] (input features x output features).

Three patterns, named by the `block` value the builders take, matching the packed formats of
docs/ops.md:

* 1, unstructured: the smallest-magnitude individual weights are zeroed (`SparseGemm`'s csr);
* 4, 4-block: weights are grouped in blocks of 4 consecutive output channels at one input index
  (W[k, 4g:4g+4]) and the blocks with the smallest norm are zeroed whole (`SparseGemm`'s block4);
* "4k", K-block: blocks of 4 consecutive input features of one output channel (W[4q:4q+4, n]),
  zeroed whole by norm: the quads `SparseQGemm` stores, which one VNNI instruction multiplies.

A Conv weight [N, C, kH, kW] is pruned to patterns 1 and 4 through its [K, N] matrix view,
K = C*kH*kW, the one `SparseConv` packs (docs/ops.md), so its 4-blocks are 4 consecutive output
channels at one input index (c, i, j). Its K-blocks are 4 consecutive input channels at one
(n, i, j), not 4 consecutive rows of that view (which would be 4 kernel taps of one channel):
an INT8 convolution orders K tap by tap, channels fastest, so that its quads are channels.

Pruning is deterministic: the same weight and target always give the same mask (selection, not
sampling), so no seed is needed here; the builders seed the random weights that are pruned.
"""

from __future__ import annotations

import numpy as np
from ortsparse.sparsify.patterns import mask_dropping_smallest

BLOCK_SIZE = 4
UNSTRUCTURED = 1
OUTPUT_BLOCK4 = BLOCK_SIZE
INPUT_BLOCK4 = "4k"
BLOCKS = (UNSTRUCTURED, OUTPUT_BLOCK4, INPUT_BLOCK4)


def _count_to_prune(total: int, sparsity: float) -> int:
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    return int(round(sparsity * total))


def _mask_dropping_smallest(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean keep-mask that drops the round(sparsity * size) lowest scores."""
    return mask_dropping_smallest(scores, _count_to_prune(scores.size, sparsity))


def prune_unstructured(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Copy of `weight` with the round(sparsity * size) smallest-|w| entries set to zero."""
    keep = _mask_dropping_smallest(np.abs(weight), sparsity)
    return np.where(keep, weight, 0).astype(weight.dtype)


def _blocked_view(weight: np.ndarray) -> np.ndarray:
    """[K, N] -> [K, ceil(N/4), 4], zero-padding the last block like the block4 format does."""
    k, n = weight.shape
    padded_n = -(-n // BLOCK_SIZE) * BLOCK_SIZE
    padded = np.zeros((k, padded_n), dtype=weight.dtype)
    padded[:, :n] = weight
    return padded.reshape(k, padded_n // BLOCK_SIZE, BLOCK_SIZE)


def _block_norms(weight: np.ndarray, norm: str) -> np.ndarray:
    blocks = _blocked_view(weight).astype(np.float64)
    if norm == "l2":
        return np.sqrt(np.sum(blocks * blocks, axis=-1))
    if norm == "l1":
        return np.sum(np.abs(blocks), axis=-1)
    raise ValueError(f"norm must be 'l2' or 'l1', got {norm!r}")


def prune_block4(weight: np.ndarray, sparsity: float, norm: str = "l2") -> np.ndarray:
    """Copy of a [K, N] `weight` with the round(sparsity * blocks) lowest-norm 4-blocks zeroed.

    A block is W[k, 4g:4g+4]; when N is not a multiple of 4 the last block of each row is shorter
    and is ranked by the norm of the weights it has.
    """
    if weight.ndim != 2:
        raise ValueError(f"block pruning needs a 2-D [K, N] weight, got shape {weight.shape}")
    keep_blocks = _mask_dropping_smallest(_block_norms(weight, norm), sparsity)
    keep = np.repeat(keep_blocks, BLOCK_SIZE, axis=1)[:, : weight.shape[1]]
    return np.where(keep, weight, 0).astype(weight.dtype)


def prune_input_block4(weight: np.ndarray, sparsity: float, norm: str = "l2") -> np.ndarray:
    """Copy of a [K, N] `weight` with the round(sparsity * blocks) lowest-norm K-blocks zeroed.

    A K-block is W[4q:4q+4, n]; when K is not a multiple of 4 the last block of each column is
    shorter (as the last quad is in SparseQGemm's format) and is ranked by the weights it has.
    """
    if weight.ndim != 2:
        raise ValueError(f"block pruning needs a 2-D [K, N] weight, got shape {weight.shape}")
    return np.ascontiguousarray(prune_block4(weight.T, sparsity, norm).T)


def _check_block(block: int | str) -> None:
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")


def prune(weight: np.ndarray, sparsity: float, block: int | str = UNSTRUCTURED) -> np.ndarray:
    """Prune a [K, N] weight: `block` 1 is unstructured, 4 is 4-block and "4k" K-block pruning."""
    _check_block(block)
    if block == UNSTRUCTURED:
        return prune_unstructured(weight, sparsity)
    if block == OUTPUT_BLOCK4:
        return prune_block4(weight, sparsity)
    return prune_input_block4(weight, sparsity)


def prune_conv(weight: np.ndarray, sparsity: float, block: int | str = UNSTRUCTURED) -> np.ndarray:
    """Prune a Conv weight [N, C, kH, kW]: `block` 1 and 4 as `prune` does its [K, N] matrix view;
    "4k" in blocks of 4 consecutive input channels at one (n, i, j), the last block of each shorter
    when C is not a multiple of 4 (a block never spans two kernel taps)."""
    _check_block(block)
    if weight.ndim != 4:
        raise ValueError(f"a conv weight is [N, C, kH, kW], got shape {weight.shape}")
    n, c, kh, kw = weight.shape
    if block != INPUT_BLOCK4:
        return conv_from_matrix_view(prune(conv_matrix_view(weight), sparsity, block), c, kh, kw)
    channel_rows = weight.transpose(0, 2, 3, 1).reshape(n * kh * kw, c)  # one row per (n, i, j)
    pruned = prune_block4(channel_rows, sparsity)
    return np.ascontiguousarray(pruned.reshape(n, kh, kw, c).transpose(0, 3, 1, 2))


def sparsity_of(weight: np.ndarray) -> float:
    """Fraction of exactly-zero entries."""
    return float(np.count_nonzero(weight == 0)) / weight.size


def block4_sparsity_of(weight: np.ndarray) -> float:
    """Fraction of all-zero 4-blocks of a [K, N] weight."""
    blocks = _blocked_view(weight)
    return float(np.count_nonzero(~blocks.any(axis=-1))) / (blocks.shape[0] * blocks.shape[1])


def input_block4_sparsity_of(weight: np.ndarray) -> float:
    """Fraction of all-zero K-blocks (W[4q:4q+4, n]) of a [K, N] weight."""
    return block4_sparsity_of(weight.T)


def rescale_to_norm(pruned: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Scale `pruned` so its Frobenius norm equals the dense weight's.

    Magnitude pruning removes a sparsity-dependent share of each layer's energy (most of it at 99%),
    so without this a deep pruned stack shrinks activations towards zero and relative comparisons of
    outputs stop meaning anything. An all-zero weight is returned unchanged.
    """
    pruned_norm = float(np.linalg.norm(pruned))
    if pruned_norm == 0.0:
        return pruned
    return (pruned * (float(np.linalg.norm(dense)) / pruned_norm)).astype(pruned.dtype)


def _kaiming_normal(rng: np.random.Generator, k: int, n: int, gain: float) -> np.ndarray:
    return rng.standard_normal((k, n), dtype=np.float32) * np.float32(np.sqrt(gain / k))


def sample_pruned_weight(
    rng: np.random.Generator,
    k: int,
    n: int,
    sparsity: float,
    block: int | str = UNSTRUCTURED,
    gain: float = 2.0,
) -> np.ndarray:
    """Random [K, N] float32 weight of variance gain/K (Kaiming), magnitude-pruned and rescaled."""
    dense = _kaiming_normal(rng, k, n, gain)
    return rescale_to_norm(prune(dense, sparsity, block), dense)


def conv_matrix_view(weight: np.ndarray) -> np.ndarray:
    """[N, C, kH, kW] -> [K, N] with Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]."""
    return weight.reshape(weight.shape[0], -1).T


def conv_from_matrix_view(matrix: np.ndarray, c: int, kh: int, kw: int) -> np.ndarray:
    """The inverse of `conv_matrix_view`: [C*kH*kW, N] -> [N, C, kH, kW], contiguous."""
    return np.ascontiguousarray(matrix.T).reshape(matrix.shape[1], c, kh, kw)


def sample_pruned_conv_weight(
    rng: np.random.Generator,
    n: int,
    c: int,
    kernel: int,
    sparsity: float,
    block: int | str = UNSTRUCTURED,
    gain: float = 2.0,
) -> np.ndarray:
    """Random [N, C, kernel, kernel] float32 conv weight of variance gain/fan_in (Kaiming), pruned
    by `prune_conv` and rescaled like `sample_pruned_weight`."""
    # Drawn and rescaled in the [K, N] matrix view: patterns 1 and 4 then give, bit for bit, the
    # weights that the published FP32 figures were measured on.
    dense = _kaiming_normal(rng, c * kernel * kernel, n, gain)
    pruned = prune_conv(conv_from_matrix_view(dense, c, kernel, kernel), sparsity, block)
    matrix = np.ascontiguousarray(conv_matrix_view(pruned))
    return conv_from_matrix_view(rescale_to_norm(matrix, dense), c, kernel, kernel)
