"""Packs an int8 weight W [K, N] into SparseQGemm's quad4 arrays (docs/ops.md).

A quad is four consecutive input features k = 4q .. 4q + 3 of one output channel, what one VNNI
instruction multiplies at once; each output channel stores the quads holding a nonzero weight, in
increasing order. Features past K pad the last quad with zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ortsparse.rewriter.graph import Graph

QUAD = 4


@dataclass(frozen=True)
class PackedQuads:
    k: int
    n: int
    values: np.ndarray  # int8 [stored_quads * 4]
    group_offsets: np.ndarray  # int32 [N + 1]
    quad_indices: np.ndarray  # int32 [stored_quads]

    @property
    def stored_quads(self) -> int:
        return len(self.quad_indices)


def quads_of(weight: np.ndarray) -> np.ndarray:
    """``weight`` [K, N] as [N, ceil(K / 4), 4]: each channel's quads, zero-padded past K."""
    k, n = weight.shape
    padded = np.zeros((-(-k // QUAD) * QUAD, n), dtype=weight.dtype)
    padded[:k] = weight
    return padded.T.reshape(n, -1, QUAD)


def pack_quads(weight: np.ndarray) -> PackedQuads:
    """Packs int8 ``weight`` [K, N]."""
    if weight.dtype != np.int8 or weight.ndim != 2:
        raise ValueError(f"expected a 2-D int8 weight, got {weight.dtype} {weight.shape}")
    quads = quads_of(weight)
    stored = np.any(quads != 0, axis=2)
    channel_of_quad, quad_indices = np.nonzero(stored)  # by channel, then increasing q
    counts = np.bincount(channel_of_quad, minlength=weight.shape[1])
    return PackedQuads(
        k=weight.shape[0],
        n=weight.shape[1],
        values=np.ascontiguousarray(quads[stored].reshape(-1)),
        group_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
        quad_indices=quad_indices.astype(np.int32),
    )


def unpack_quads(packed: PackedQuads) -> np.ndarray:
    """The int8 W [K, N] that ``packed`` stands for."""
    quads = np.zeros((packed.n, -(-packed.k // QUAD), QUAD), dtype=np.int8)
    channels = np.repeat(np.arange(packed.n), np.diff(packed.group_offsets))
    quads[channels, packed.quad_indices] = packed.values.reshape(-1, QUAD)
    return quads.reshape(packed.n, -1).T[: packed.k]


def stored_quad_fraction(weight: np.ndarray) -> float:
    """The fraction of ``weight``'s quads that hold a nonzero weight: the kernel's work relative
    to a dense product."""
    quads = quads_of(weight)
    return float(np.count_nonzero(np.any(quads != 0, axis=2))) / max(
        1, quads.shape[0] * quads.shape[1]
    )


def add_packed_quads(graph: Graph, base: str, packed: PackedQuads) -> list[str]:
    """Adds ``packed`` to the graph as the weight_values, weight_group_offsets and
    weight_input_indices initializers of the quad4 ops (named after ``base``), and returns their
    names in that order."""
    return [
        graph.add_initializer(f"{base}.weight_values", packed.values),
        graph.add_initializer(f"{base}.weight_group_offsets", packed.group_offsets),
        graph.add_initializer(f"{base}.weight_input_indices", packed.quad_indices),
    ]
