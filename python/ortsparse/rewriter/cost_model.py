"""Predicts dense ORT MatMul or Conv time against SparseGemm or SparseConv time, from constants
measured on real kernels.

The model is linear in the work each kernel does for one call with M rows of X:

    dense  = dense_ns_per_call  + dense_ns_per_mac * M*K*N
    csr    = sparse_ns_per_call + sparse_ns_per_output * M*N + csr_ns_per_nonzero_row * M*nnz
             + sparse_ns_per_panel_element * M*K
    block4 = the same with block4_ns_per_block_row * M*blocks

A convolution is the GEMM of its output pixels (M = batch * OH * OW) by its weight's matrix view
(K = C*kH*kW, N); SparseConv packs each pixel's window of X into a panel first, M*K element
moves whatever the sparsity, whose cost depends on the window's kind (WINDOW_KINDS). SparseGemm
reads X in place: no panel term. ORT's dense Conv and MatMul are measured separately too.

``tools/measure_cost_model.py`` fits the constants per kernel family on this machine and writes
them to cost_model_data.json: "families" for MatMul/SparseGemm, "conv_families" for
Conv/SparseConv, which has one panel constant per window kind.

M, the rows of X per call, is usually symbolic (batch x sequence). The decision uses the product
of X's leading dims when all are static, else REPRESENTATIVE_M rows: a typical serving batch, large
enough that per-call overheads do not decide for shapes that run at any real batch size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA_PATH = Path(__file__).with_name("cost_model_data.json")

REPRESENTATIVE_M = 64

FORMATS = ("csr", "block4")

# How SparseConv fills a panel (provider/kernels/f32-conv-pack): "copy" for 1x1 stride-1 unpadded
# windows (whole runs of a channel), "unit_stride" for runs of input columns, "strided" for a
# scalar gather of every other (or every s-th) column.
WINDOW_KINDS = ("copy", "unit_stride", "strided")


@dataclass(frozen=True)
class KernelCosts:
    dense_ns_per_call: float
    dense_ns_per_mac: float
    sparse_ns_per_call: float
    sparse_ns_per_output: float
    csr_ns_per_nonzero_row: float  # one stored weight applied to one row of X
    block4_ns_per_block_row: float  # one stored 4-channel block applied to one row of X
    sparse_ns_per_panel_element: float = 0.0  # SparseConv's im2col; SparseGemm has none

    def dense_ns(self, m: int, k: int, n: int) -> float:
        return self.dense_ns_per_call + self.dense_ns_per_mac * m * k * n

    def sparse_ns(self, m: int, k: int, n: int, format: str, stored_blocks: int) -> float:
        per_block_row = (
            self.csr_ns_per_nonzero_row if format == "csr" else self.block4_ns_per_block_row
        )
        return (
            self.sparse_ns_per_call
            + self.sparse_ns_per_output * m * n
            + per_block_row * m * stored_blocks
            + self.sparse_ns_per_panel_element * m * k
        )


@dataclass(frozen=True)
class Prediction:
    format: str  # the faster sparse format
    dense_ns: float
    sparse_ns: float

    @property
    def sparse_wins(self) -> bool:
        return self.sparse_ns < self.dense_ns

    @property
    def speedup(self) -> float:
        return self.dense_ns / self.sparse_ns


class CostModel:
    def __init__(self, costs: KernelCosts, family: str):
        self.costs = costs
        self.family = family  # the kernel family whose constants are in use

    @classmethod
    def load(cls, path: Path = DATA_PATH, family: str | None = None) -> CostModel:
        """MatMul/SparseGemm constants for ``family`` (default: the family the provider picks on
        this CPU). A family the file has no measurement for falls back to the file's default."""
        family, constants = _family_constants(path, "families", family)
        return cls(KernelCosts(**constants), family)

    @classmethod
    def load_conv(
        cls, path: Path = DATA_PATH, family: str | None = None
    ) -> dict[str, CostModel]:
        """Conv/SparseConv models for ``family`` as ``load`` picks it, one per window kind."""
        family, constants = _family_constants(path, "conv_families", family)
        shared = {
            name: value
            for name, value in constants.items()
            if not name.endswith("_ns_per_panel_element")
        }
        return {
            kind: cls(
                KernelCosts(
                    **shared,
                    sparse_ns_per_panel_element=constants[f"{kind}_ns_per_panel_element"],
                ),
                family,
            )
            for kind in WINDOW_KINDS
        }

    def predict(self, m: int, k: int, n: int, stored_blocks: dict[str, int]) -> Prediction:
        """Dense time against the faster sparse format, given each format's stored block count."""
        sparse_ns, format = min(
            (self.costs.sparse_ns(m, k, n, format, stored_blocks[format]), format)
            for format in FORMATS
        )
        return Prediction(format, self.costs.dense_ns(m, k, n), sparse_ns)

    def break_even_sparsity(self, m: int, k: int, n: int, format: str = "csr") -> float:
        """Sparsity above which ``format`` beats dense: unstructured zeros for csr, whole zero
        4-channel blocks for block4. 1.0 when it never does, 0.0 when it always does."""
        costs = self.costs
        blocks_if_dense = k * n if format == "csr" else k * -(-n // 4)
        no_blocks_ns = costs.sparse_ns(m, k, n, format, 0)
        ns_per_stored_block = costs.sparse_ns(m, k, n, format, 1) - no_blocks_ns
        spare_ns = costs.dense_ns(m, k, n) - no_blocks_ns
        break_even_density = spare_ns / (ns_per_stored_block * blocks_if_dense)
        return min(1.0, max(0.0, 1.0 - break_even_density))


def representative_m(leading_dims: tuple) -> int:
    """Rows of X per call: the product of X's leading dims if all are static, else
    REPRESENTATIVE_M."""
    if all(isinstance(dim, int) and dim > 0 for dim in leading_dims):
        rows = 1
        for dim in leading_dims:
            rows *= dim
        return rows
    return REPRESENTATIVE_M


def conv_rows(y_shape: tuple | None) -> int:
    """Output pixels of one image, OH*OW, with batch 1 where it is symbolic (a conv's rows are
    its pixels, plenty for any batch; per-image cost ranks layers as any batch would, since
    every term but the per-call one grows with the batch); REPRESENTATIVE_M where OH or OW is not
    static."""
    if y_shape is None or len(y_shape) != 4:
        return REPRESENTATIVE_M
    batch = y_shape[0] if isinstance(y_shape[0], int) and y_shape[0] > 0 else 1
    return representative_m((batch, *y_shape[2:]))


def window_kind(kernel_shape: tuple, strides: tuple, pads: tuple) -> str:
    """Which WINDOW_KINDS the provider's panel packing takes for this convolution."""
    if tuple(kernel_shape) == (1, 1) and tuple(strides) == (1, 1) and not any(pads):
        return "copy"
    return "unit_stride" if strides[1] == 1 else "strided"


def _family_constants(path: Path, key: str, family: str | None) -> tuple[str, dict]:
    data = json.loads(Path(path).read_text())
    family = family or current_kernel_family()
    if family not in data[key]:
        family = data["default_family"]
    return family, data[key][family]


def current_kernel_family() -> str | None:
    """The kernel family the provider picks on this CPU, or None when the ISA module is absent."""
    try:
        from ortsparse.isa import cpu_report

        return cpu_report()["kernel_family"]
    except (ImportError, ValueError):  # not built yet / ORTSPARSE_ISA names no family
        return None
