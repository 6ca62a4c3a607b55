"""Predicts dense ORT MatMul or Conv time against SparseGemm or SparseConv time, from constants
measured on real kernels.

The model is linear in the work each kernel does for one call with M rows of X:

    dense  = dense_ns_per_call  + dense_ns_per_mac * M*K*N + dense_ns_per_output * M*N
    csr    = sparse_ns_per_call + sparse_ns_per_output * M*N + csr_ns_per_nonzero_row * M*nnz
    block4 = the same with block4_ns_per_block_row * M*blocks

(csr and block4 on the tile kernels; a convolution's csr weights may run as compiled code, below.)

A convolution is the GEMM of its output pixels (M = batch * OH * OW) by its weight's matrix view
(K = C*kH*kW, N), with three differences on SparseConv's side (ConvWork): its direct kernels
compute a grid of output positions as wide as the input planes (wider than OW by the kernel's
reach), which replaces M in the nonzero term; unless X is read in place it first packs the input
planes, a term per plane element; and where it runs csr weights as compiled code (runs_compiled,
mirroring the provider's choice: AVX-512, images of at least 6 tiles, ...), that code has a
nonzero term of its own and loads each input vector once for a block of output channels, a term
per load (packing.count_compiled_input_loads). That load costs several FMAs, so a stored weight
costs less where a block's channels share more of them: at 5% density most weights need a load of
their own, at 100% one load serves the whole block. The tile kernels load an input vector per
stored weight, which their nonzero term includes. A grouped convolution is packed as one
block-diagonal matrix, while ORT's Conv does the work of K / groups. ORT's dense Conv and MatMul
are measured separately.
A SiLU (x * Sigmoid(x)) after the convolution adds a term per output on both sides: ORT runs it as
a pass of its own after its Conv (it fuses Relu or Clip into the Conv, not SiLU), while
SparseConv's output stage finishes the sums with it.

``ortsparse calibrate`` (and ``tools/measure_cost_model.py``, for every kernel family) fits the
constants on this CPU: "families" for MatMul/SparseGemm, "conv_families" for Conv/SparseConv.
Constants describe the CPU they were measured on only; cost_data.py says which ones apply here,
and with none for this CPU, ConservativeCostModel asks every other CPU's for a clear win.

M, the rows of X per call, is usually symbolic (batch x sequence). The decision uses the product
of X's leading dims when all are static, else REPRESENTATIVE_M rows: a typical serving batch, large
enough that per-call overheads do not decide for shapes that run at any real batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortsparse.isa import compiled_conv_limits
from ortsparse.rewriter.packing import COMPILED_BLOCK_CHANNELS, expected_compiled_input_loads
from ortsparse.rewriter.sparse_op import NO_ACTIVATION

REPRESENTATIVE_M = 64

FORMATS = ("csr", "block4")

# Halvings of the density interval in break_even_sparsity: far below any reported precision.
BREAK_EVEN_BISECTIONS = 40

# SparseConv's widest vector (AVX-512: 16 floats) and tile (64 positions), which decide whether X
# can be read in place (provider/operators/sparse_conv.cc, BuildPlan).
_VECTOR_POSITIONS = 16
_TILE_POSITIONS = 64

# Where SparseConv runs csr weights as compiled code (provider/operators/sparse_conv.cc,
# CompileFor; provider/kernels/jit): the families that have it, the fewest tiles of grid positions
# per image, the weights per input vector below which tile kernels that finish Y themselves are
# kept, and the most stored weights it compiles.
COMPILED_FAMILIES = ("avx512", "avx512vnni")
_MIN_COMPILED_TILES = compiled_conv_limits()["min_compiled_tiles"]
_MIN_FINISHING_REUSE = compiled_conv_limits()["min_finishing_reuse"]
_MAX_COMPILED_WEIGHTS = compiled_conv_limits()["max_compiled_weights"]
# Activations that the tile kernels' finishers apply (provider: DirectCsrFinishersFor).
_TILE_FINISHED_ACTIVATIONS = (NO_ACTIVATION, "relu")


@dataclass(frozen=True)
class ConvWork:
    """What one SparseConv call computes besides the GEMM view's M output pixels."""

    positions: int  # grid positions the tile kernels compute: M plus the planes' extra columns
    plane_elements: int  # input plane floats packed, 0 when X is read in place
    groups: int = 1  # the Conv's groups: ORT's dense Conv does K / groups per output
    silu: bool = False  # a SiLU follows the Conv (maybe after a BatchNormalization or an Add)
    tiles_per_image: int = 1  # tiles of grid positions per image
    # The tile kernels would finish Y themselves: planes as wide as the output (a kernel one
    # column wide) and an activation they apply (none or Relu).
    tile_finishers: bool = False
    # ORT's Conv reorders its output from NCHWc to NCHW: not where a pooling node reads it (maybe
    # after the activation), which ORT runs in NCHWc too; the reorder then comes after the pool,
    # on fewer outputs, and is not counted.
    dense_output_reordered: bool = True


@dataclass(frozen=True)
class KernelCosts:
    dense_ns_per_call: float
    dense_ns_per_mac: float
    sparse_ns_per_call: float
    sparse_ns_per_output: float
    csr_ns_per_nonzero_row: float  # one stored weight applied to one row of X
    block4_ns_per_block_row: float  # one stored 4-channel block applied to one row of X
    sparse_ns_per_plane_element: float = 0.0  # SparseConv's input planes; SparseGemm has none
    # A SiLU after a convolution, per output: ORT's pass of its own, SparseConv's fused one.
    dense_ns_per_silu_output: float = 0.0
    sparse_ns_per_silu_output: float = 0.0
    # ORT's work per output besides the MACs: for a Conv, its NCHWc kernels' reorder of the
    # output to NCHW (done wherever the consumer is not an NCHWc kernel, ortsparse's ops or a
    # graph output), which weighs most where each output takes few MACs, as in a stem on the
    # image's 3 channels. It is measured on graph outputs, and not charged where a pooling node
    # takes ORT's NCHWc layout as it is (ConvWork.dense_output_reordered).
    dense_ns_per_output: float = 0.0
    # SparseConv's compiled code (csr weights only), per grid position: one stored weight, and
    # loading one input vector for a block of channels.
    compiled_ns_per_nonzero_row: float = 0.0
    compiled_ns_per_input_load_row: float = 0.0

    def dense_ns(
        self, m: int, k: int, n: int, silu: bool = False, output_reordered: bool = True
    ) -> float:
        return (
            self.dense_ns_per_call
            + self.dense_ns_per_mac * m * k * n
            + (self.dense_ns_per_output * m * n if output_reordered else 0.0)
            + (self.dense_ns_per_silu_output * m * n if silu else 0.0)
        )

    def sparse_ns(
        self,
        m: int,
        n: int,
        format: str,
        stored_blocks: int,
        conv: ConvWork | None = None,
        compiled_loads: float | None = None,
    ) -> float:
        """``compiled_loads``: for csr weights of a convolution that runs them as compiled code
        (runs_compiled), the input vectors that code loads (count_compiled_input_loads); None
        where the tile kernels run them."""
        rows = m if conv is None else conv.positions
        planes = 0 if conv is None else conv.plane_elements
        silu_outputs = m * n if conv is not None and conv.silu else 0
        if conv is not None and format == "csr" and compiled_loads is not None:
            multiply = (
                self.compiled_ns_per_nonzero_row * stored_blocks
                + self.compiled_ns_per_input_load_row * compiled_loads
            )
        elif format == "csr":
            multiply = self.csr_ns_per_nonzero_row * stored_blocks
        else:
            multiply = self.block4_ns_per_block_row * stored_blocks
        return (
            self.sparse_ns_per_call
            + self.sparse_ns_per_output * m * n
            + multiply * rows
            + self.sparse_ns_per_plane_element * planes
            + self.sparse_ns_per_silu_output * silu_outputs
        )


@dataclass(frozen=True)
class Prediction:
    format: str  # the faster sparse format
    dense_ns: float
    sparse_ns: float
    # The speedup the sparse op must exceed to be chosen: 1 where the constants were measured on
    # this CPU, more for a conservative prediction from other CPUs' (ConservativeCostModel).
    required_speedup: float = 1.0

    @property
    def sparse_wins(self) -> bool:
        return self.speedup > self.required_speedup

    @property
    def speedup(self) -> float:
        return self.dense_ns / self.sparse_ns if self.sparse_ns > 0 else float("inf")


class CostModel:
    """Predictions from one CPU's measured constants for one kernel family."""

    def __init__(self, costs: KernelCosts, family: str, source: str = ""):
        self.costs = costs
        self.family = family  # the kernel family whose constants are in use
        self.source = source  # where the constants come from, for reports

    def predict(
        self,
        m: int,
        k: int,
        n: int,
        stored_blocks: dict[str, int],
        conv: ConvWork | None = None,
        input_loads: int = 0,
    ) -> Prediction:
        """Dense time against the faster sparse format, given each format's stored block count
        (and for a convolution, what SparseConv computes besides M rows, and the input loads of
        its csr weight's compiled code, count_compiled_input_loads, counted where it runs)."""
        return min(
            (
                self.predict_format(format, m, k, n, stored_blocks, conv, input_loads)
                for format in FORMATS
            ),
            key=lambda prediction: (prediction.sparse_ns, prediction.format),
        )

    def predict_format(
        self,
        format: str,
        m: int,
        k: int,
        n: int,
        stored_blocks: dict[str, int],
        conv: ConvWork | None = None,
        input_loads: int = 0,
    ) -> Prediction:
        """predict for one sparse format."""
        compiled = runs_compiled(self.family, conv, k, n, stored_blocks["csr"])
        compiled_loads = input_loads if compiled else None
        sparse_ns = self.costs.sparse_ns(
            m, n, format, stored_blocks[format], conv, compiled_loads
        )
        return Prediction(format, self._dense_ns(m, k, n, conv), sparse_ns)

    def break_even_sparsity(
        self,
        m: int,
        k: int,
        n: int,
        format: str = "csr",
        conv: ConvWork | None = None,
        required_speedup: float = 1.0,
    ) -> float:
        """Sparsity above which ``format`` beats dense (by ``required_speedup``): unstructured
        zeros (spread evenly over the blocks of compiled code) for csr, whole zero 4-channel
        blocks for block4. 1.0 when it never does, 0.0 when it always does."""
        dense_ns = self._dense_ns(m, k, n, conv) / required_speedup
        blocks_if_dense = k * n if format == "csr" else k * -(-n // 4)

        def sparse_ns(density: float) -> float:
            blocks = density * blocks_if_dense
            compiled_loads = None
            if format == "csr" and runs_compiled(self.family, conv, k, n, blocks):
                compiled_loads = expected_compiled_input_loads(k, n, density)
            return self.costs.sparse_ns(m, n, format, blocks, conv, compiled_loads)

        if sparse_ns(1.0) <= dense_ns:
            return 0.0
        if sparse_ns(0.0) >= dense_ns:
            return 1.0
        # Sparse time grows with density (but for a step where the provider switches kernels):
        # bisect between a density where it wins and one where it loses.
        winning, losing = 0.0, 1.0
        for _ in range(BREAK_EVEN_BISECTIONS):
            density = (winning + losing) / 2
            if sparse_ns(density) < dense_ns:
                winning = density
            else:
                losing = density
        return 1.0 - winning

    def _dense_ns(self, m: int, k: int, n: int, conv: ConvWork | None) -> float:
        if conv is None:
            return self.costs.dense_ns(m, k, n)
        return self.costs.dense_ns(m, k // conv.groups, n, conv.silu, conv.dense_output_reordered)


class ConservativeCostModel:
    """Predictions for a CPU nobody measured, from the constants of the CPUs that were (each for
    the same kernel family): the sparse op is chosen only where every one of them predicts it
    faster by more than ``required_speedup``, and in the format whose worst prediction is best.
    A layer predicted to break even is kept."""

    def __init__(self, models: list[CostModel], family: str, required_speedup: float, source: str):
        if not models:
            raise ValueError("a conservative cost model needs at least one measured CPU's data")
        self.models = models
        self.family = family
        self.required_speedup = required_speedup
        self.source = source

    def predict(
        self,
        m: int,
        k: int,
        n: int,
        stored_blocks: dict[str, int],
        conv: ConvWork | None = None,
        input_loads: int = 0,
    ) -> Prediction:
        worst = [
            min(
                (
                    model.predict_format(format, m, k, n, stored_blocks, conv, input_loads)
                    for model in self.models
                ),
                key=lambda prediction: prediction.speedup,
            )
            for format in FORMATS
        ]
        best = min(worst, key=lambda prediction: (-prediction.speedup, prediction.format))
        return Prediction(best.format, best.dense_ns, best.sparse_ns, self.required_speedup)

    def break_even_sparsity(
        self, m: int, k: int, n: int, format: str = "csr", conv: ConvWork | None = None
    ) -> float:
        return max(
            model.break_even_sparsity(m, k, n, format, conv, self.required_speedup)
            for model in self.models
        )


def runs_compiled(family: str, conv: ConvWork | None, k: int, n: int, nonzeros: float) -> bool:
    """Whether SparseConv in kernel ``family`` runs ``conv``'s csr weight [K, N] of ``nonzeros``
    stored weights as compiled code rather than on the tile kernels (the provider's CompileFor;
    the fusions of a channels-last output and of an output affine, which keep the tile kernels
    from finishing Y, come after this decision and are not counted)."""
    if conv is None or family not in COMPILED_FAMILIES:
        return False
    if conv.tiles_per_image < _MIN_COMPILED_TILES or nonzeros > _MAX_COMPILED_WEIGHTS:
        return False
    # The provider's measure of reuse: the weights a full block of channels has per input.
    weights_per_input = nonzeros / max(k * n, 1) * min(n, COMPILED_BLOCK_CHANNELS)
    return not (conv.tile_finishers and weights_per_input < _MIN_FINISHING_REUSE)


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


def conv_work(
    x_shape: tuple | None,
    out_size: tuple | None,
    kernel: tuple,
    strides: tuple,
    dilations: tuple,
    pads: tuple,
    groups: int = 1,
    activation: str = NO_ACTIVATION,
    pooled: bool = False,
) -> ConvWork:
    """ConvWork of one call, with the batch conv_rows assumes, mirroring the provider's plan: the
    planes are as wide as OW plus the kernel's reach in plane columns, one plane per stride phase
    some tap uses, each rounded up to a cache line; X is read in place at stride 1 without padding
    when a whole last span of positions fits. ``out_size`` is (OH, OW); ``activation``, the one
    SparseConv will apply (a sparse_op.Activation name); ``pooled``, whether a pooling node reads
    the result."""
    silu = activation == "silu"
    finished_activation = activation in _TILE_FINISHED_ACTIVATIONS
    batch = 1
    if x_shape is not None and isinstance(x_shape[0], int) and x_shape[0] > 0:
        batch = x_shape[0]
    channels = x_shape[1] if x_shape is not None and isinstance(x_shape[1], int) else None
    if out_size is None or not all(isinstance(size, int) for size in out_size) or not channels:
        # Unknown sizes: a representative call, packing one input per output position.
        tiles = -(-REPRESENTATIVE_M // _TILE_POSITIONS)
        return ConvWork(
            REPRESENTATIVE_M,
            REPRESENTATIVE_M * (channels or 1),
            groups,
            silu,
            tiles,
            dense_output_reordered=not pooled,
        )
    reach = [(k - 1) * d // s for k, s, d in zip(kernel, strides, dilations)]
    phases = [len({i * d % s for i in range(k)}) for k, s, d in zip(kernel, strides, dilations)]
    out_height, out_width = out_size
    plane_width = out_width + reach[1]
    positions = (out_height - 1) * plane_width + out_width
    last_first = (-(-positions // _TILE_POSITIONS) - 1) * _TILE_POSITIONS
    last_span = -(-(positions - last_first) // _VECTOR_POSITIONS) * _VECTOR_POSITIONS
    if tuple(strides) == (1, 1) and not any(pads) and positions >= last_span:
        plane_elements = 0
    else:
        plane_floats = (out_height + reach[0]) * plane_width
        plane_elements = channels * phases[0] * phases[1] * -(-plane_floats // 16) * 16
    return ConvWork(
        batch * positions,
        batch * plane_elements,
        groups,
        silu,
        tiles_per_image=-(-positions // _TILE_POSITIONS),
        tile_finishers=plane_width == out_width and finished_activation,
        dense_output_reordered=not pooled,
    )


# Kernel families that run another family's FP32 kernels, which the constants describe.
_FP32_KERNELS_OF = {"avxvnni": "avx2"}


def fp32_kernel_family(family: str | None) -> str | None:
    """The family whose FP32 kernels ``family`` runs: itself but for _FP32_KERNELS_OF."""
    return _FP32_KERNELS_OF.get(family, family)


def current_kernel_family() -> str | None:
    """The kernel family the provider picks on this CPU, or None when the ISA module is absent."""
    try:
        from ortsparse.isa import cpu_report

        return cpu_report()["kernel_family"]
    except (ImportError, ValueError):  # not built yet / ORTSPARSE_ISA names no family
        return None
