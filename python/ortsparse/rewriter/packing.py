"""Packs a dense weight W [K, N] into SparseGemm's csr or block4 arrays (docs/ops.md).

Both formats group output channels (one channel per csr group, four per block4 group) and store,
per group, the input indices k whose weights are not all zero, in increasing order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ortsparse.isa import compiled_conv_limits

BLOCK_SIZE = {"csr": 1, "block4": 4}

# SparseConv's compiled code (provider/kernels/f32-spconv/compiled.h) multiplies csr weights in
# blocks of at most this many output channels, of nearly equal sizes.
COMPILED_BLOCK_CHANNELS = compiled_conv_limits()["max_block_channels"]

_INT32_MAX = np.iinfo(np.int32).max


@dataclass(frozen=True)
class PackedWeight:
    format: str
    k: int
    n: int
    values: np.ndarray  # float32 [stored_blocks * block_size]
    group_offsets: np.ndarray  # int32 [num_groups + 1]
    input_indices: np.ndarray  # int32 [stored_blocks]

    @property
    def stored_blocks(self) -> int:
        return len(self.input_indices)


def pack(weight: np.ndarray, format: str) -> PackedWeight:
    """Packs float32 ``weight`` [K, N]; a block is stored when any of its weights is nonzero."""
    block_size = BLOCK_SIZE[format]
    blocks, stored = _blocks(weight, block_size)
    group_of_block, input_indices = np.nonzero(stored)  # row-major: by group, then increasing k
    if len(input_indices) > _INT32_MAX:
        raise ValueError(
            f"{len(input_indices)} stored blocks do not fit SparseGemm's int32 indices"
        )
    counts = np.bincount(group_of_block, minlength=stored.shape[0])
    return PackedWeight(
        format=format,
        k=weight.shape[0],
        n=weight.shape[1],
        values=np.ascontiguousarray(blocks[stored].reshape(-1), dtype=np.float32),
        group_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
        input_indices=input_indices.astype(np.int32),
    )


def count_stored_blocks(weight: np.ndarray, format: str) -> int:
    """How many blocks ``pack(weight, format)`` would store, without building the arrays."""
    return int(np.count_nonzero(_blocks(weight, BLOCK_SIZE[format])[1]))


def compiled_blocks(n: int) -> list[int]:
    """The output channel counts of SparseConv's compiled blocks for N channels, in order."""
    blocks = -(-n // COMPILED_BLOCK_CHANNELS)
    return [n // blocks + (1 if block < n % blocks else 0) for block in range(blocks)]


def count_compiled_input_loads(weight: np.ndarray) -> int:
    """The input vectors that compiled code loads per vector of grid positions for ``weight``
    [K, N]: each block of channels loads input feature k once when any of its channels has a
    weight there."""
    loads, first = 0, 0
    for channels in compiled_blocks(weight.shape[1]):
        loads += int(np.count_nonzero(np.any(weight[:, first : first + channels] != 0, axis=1)))
        first += channels
    return loads


def expected_compiled_input_loads(k: int, n: int, density: float) -> float:
    """count_compiled_input_loads of a [K, N] weight whose weights are each nonzero with
    probability ``density``, on average."""
    return k * sum(1.0 - (1.0 - density) ** channels for channels in compiled_blocks(n))


def unpack(packed: PackedWeight) -> np.ndarray:
    """The dense W [K, N] that ``packed`` stands for."""
    block_size = BLOCK_SIZE[packed.format]
    num_groups = len(packed.group_offsets) - 1
    counts = np.diff(packed.group_offsets)
    blocks = np.zeros((num_groups, packed.k, block_size), dtype=np.float32)
    blocks[np.repeat(np.arange(num_groups), counts), packed.input_indices] = packed.values.reshape(
        -1, block_size
    )
    return blocks.transpose(1, 0, 2).reshape(packed.k, num_groups * block_size)[:, : packed.n]


def scale_output_channels(packed: PackedWeight, factors: np.ndarray) -> PackedWeight:
    """``packed`` with column n of W multiplied by ``factors[n]``, storing the same blocks (a
    factor of zero leaves stored zeros, which cost time but change no result)."""
    block_size = BLOCK_SIZE[packed.format]
    num_groups = len(packed.group_offsets) - 1
    padded_factors = np.ones(num_groups * block_size, dtype=np.float64)
    padded_factors[: packed.n] = factors
    group_of_block = np.repeat(np.arange(num_groups), np.diff(packed.group_offsets))
    factors_per_block = padded_factors.reshape(num_groups, block_size)[group_of_block]
    values = packed.values.reshape(-1, block_size) * factors_per_block
    return dataclasses.replace(packed, values=values.reshape(-1).astype(np.float32))


def _blocks(weight: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """W as blocks [num_groups, K, block_size] (zero-padded past N), and which are stored."""
    k, n = weight.shape
    num_groups = -(-n // block_size)
    padded = np.zeros((k, num_groups * block_size), dtype=np.float32)
    padded[:, :n] = weight
    blocks = padded.reshape(k, num_groups, block_size).transpose(1, 0, 2)
    return blocks, np.any(blocks != 0, axis=2)
