import dataclasses

import pytest

from ortsparse.rewriter.cost_data import shipped_data
from ortsparse.rewriter.cost_model import (
    REPRESENTATIVE_M,
    ConvWork,
    CostModel,
    KernelCosts,
    conv_rows,
    conv_work,
    representative_m,
    runs_compiled,
)

COSTS = KernelCosts(
    dense_ns_per_call=1000.0,
    dense_ns_per_mac=0.02,
    sparse_ns_per_call=1000.0,
    sparse_ns_per_output=0.0,
    csr_ns_per_nonzero_row=0.2,
    block4_ns_per_block_row=0.4,
)


@pytest.mark.parametrize("data", shipped_data(), ids=lambda data: data.path.name)
def test_shipped_data_is_measured_and_complete(data):
    assert data.cpu.vendor and data.cpu.family > 0 and data.cpu.best_kernel_family
    assert data.gemm and set(data.conv) == set(data.gemm)
    for constants in data.gemm.values():
        costs = KernelCosts(**constants)
        assert all(value >= 0 for value in vars(costs).values())
        assert (
            costs.dense_ns_per_mac > 0
            and costs.csr_ns_per_nonzero_row > 0
            and costs.block4_ns_per_block_row > 0
        )
    for constants in data.conv.values():
        # Measured with every term of the conv model, none left at its default.
        assert set(constants) == {field.name for field in dataclasses.fields(KernelCosts)}
        costs = KernelCosts(**constants)
        assert all(value >= 0 for value in vars(costs).values())
        assert costs.dense_ns_per_mac > 0 and costs.csr_ns_per_nonzero_row > 0
        # ORT's SiLU is a pass of its own; SparseConv's fused one may cost nothing measurable
        # (on a Zen 5 it hid behind the memory traffic: fitted at 0).
        assert costs.dense_ns_per_silu_output > 0


@pytest.mark.parametrize(
    "x_shape,out_size,kernel,strides,dilations,pads,expected",
    [
        # Stride 1, unpadded: X read in place, the grid is the output, planes as wide (1x1), so
        # the tile kernels would finish Y.
        ((1, 64, 56, 56), (56, 56), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), ConvWork(3136, 0, tiles_per_image=49, tile_finishers=True)),
        # 49 positions are fewer than the 64 the last tile reads: packed, one cache line rounded.
        ((1, 8, 7, 7), (7, 7), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), ConvWork(49, 8 * 64, tiles_per_image=1, tile_finishers=True)),
        # Padded 3x3: planes 58 wide, the grid's rows too; two columns of each row are dropped.
        ((1, 4, 56, 56), (56, 56), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), ConvWork(55 * 58 + 56, 4 * 3376, tiles_per_image=51)),
        # Stride 2: four phase planes of 29 x 29 (848 floats with the rounding) per channel.
        ((2, 4, 56, 56), (28, 28), (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), ConvWork(2 * 811, 2 * 4 * 4 * 848, tiles_per_image=13)),
        # Dilation 2 at stride 2 uses only the even phase; a symbolic batch counts as one image.
        (("b", 4, 15, 15), (8, 8), (3, 3), (2, 2), (2, 2), (2, 2, 2, 2), ConvWork(7 * 10 + 8, 4 * 112, tiles_per_image=2)),
    ],
)
def test_conv_work_mirrors_the_provider_plan(x_shape, out_size, kernel, strides, dilations, pads, expected):
    assert conv_work(x_shape, out_size, kernel, strides, dilations, pads) == expected


@pytest.mark.parametrize(
    "activation, silu, tile_finishers",
    [("none", False, True), ("relu", False, True), ("silu", True, False), ("clip", False, False)],
)
def test_conv_work_knows_the_activation(activation, silu, tile_finishers):
    work = conv_work((1, 64, 56, 56), (56, 56), (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), activation=activation)
    assert (work.silu, work.tile_finishers) == (silu, tile_finishers)
    # Planes wider than the output: the tile kernels never finish Y.
    assert not conv_work((1, 64, 56, 56), (56, 56), (3, 3), (1, 1), (1, 1), (1,) * 4, activation=activation).tile_finishers


def test_conv_work_of_unknown_sizes_is_representative():
    assert conv_work((1, 8, "h", "w"), ("oh", "ow"), (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 2) == ConvWork(
        REPRESENTATIVE_M, 8 * REPRESENTATIVE_M, 2
    )


def test_grouped_conv_is_compared_with_the_dense_work_of_its_groups():
    model = CostModel(COSTS, "test")
    stored = {"csr": 1000, "block4": 1000}
    ungrouped = model.predict(64, 576, 64, stored, ConvWork(64, 0, 1))
    depthwise = model.predict(64, 576, 64, stored, ConvWork(64, 0, 64))
    assert depthwise.sparse_ns == ungrouped.sparse_ns
    assert depthwise.dense_ns - COSTS.dense_ns_per_call == pytest.approx((ungrouped.dense_ns - COSTS.dense_ns_per_call) / 64)


def test_planes_and_wider_grids_move_break_even_up():
    planes = KernelCosts(**{**vars(COSTS), "sparse_ns_per_plane_element": 1.0})
    model, with_planes = CostModel(COSTS, "test"), CostModel(planes, "test")
    in_place, packed, wide = ConvWork(64, 0), ConvWork(64, 64 * 1024), ConvWork(80, 0)
    base = model.break_even_sparsity(64, 1024, 1024, "csr", in_place)
    assert with_planes.break_even_sparsity(64, 1024, 1024, "csr", packed) > base
    assert model.break_even_sparsity(64, 1024, 1024, "csr", wide) > base


def test_a_silu_after_the_conv_counts_per_output_on_each_side():
    costs = KernelCosts(**{**vars(COSTS), "dense_ns_per_silu_output": 0.5, "sparse_ns_per_silu_output": 0.2})
    model = CostModel(costs, "test")
    stored = {"csr": 1000, "block4": 1000}
    plain = model.predict(64, 576, 32, stored, ConvWork(64, 0))
    with_silu = model.predict(64, 576, 32, stored, ConvWork(64, 0, silu=True))
    assert with_silu.dense_ns - plain.dense_ns == pytest.approx(0.5 * 64 * 32)
    assert with_silu.sparse_ns - plain.sparse_ns == pytest.approx(0.2 * 64 * 32)
    # ORT's pass costing more than the fused one moves break-even down.
    base = model.break_even_sparsity(64, 576, 32, "csr", ConvWork(64, 0))
    assert model.break_even_sparsity(64, 576, 32, "csr", ConvWork(64, 0, silu=True)) < base


def test_dense_time_per_output_weighs_most_where_outputs_take_few_macs():
    costs = KernelCosts(**{**vars(COSTS), "dense_ns_per_output": 1.0})
    model, without = CostModel(costs, "test"), CostModel(COSTS, "test")
    stored = {"csr": 0, "block4": 0}
    for k in (27, 576):
        extra = model.predict(64, k, 32, stored).dense_ns - without.predict(64, k, 32, stored).dense_ns
        assert extra == pytest.approx(64 * 32)
    # Relative to the MACs, a 3-channel stem's outputs cost 576 / 27 times more.
    stem = model.predict(64, 27, 32, stored).dense_ns / without.predict(64, 27, 32, stored).dense_ns
    body = model.predict(64, 576, 32, stored).dense_ns / without.predict(64, 576, 32, stored).dense_ns
    assert stem > body



def test_dense_time_per_output_is_not_charged_where_a_pool_takes_the_blocked_layout():
    costs = KernelCosts(**{**vars(COSTS), "dense_ns_per_output": 1.0})
    model = CostModel(costs, "test")
    stored = {"csr": 0, "block4": 0}
    pooled = dataclasses.replace(ConvWork(64, 0), dense_output_reordered=False)
    reordered = model.predict(64, 27, 32, stored, ConvWork(64, 0)).dense_ns
    assert reordered - model.predict(64, 27, 32, stored, pooled).dense_ns == pytest.approx(64 * 32)
    assert not conv_work((1, 3, 8, 8), (8, 8), (3, 3), (1, 1), (1, 1), (1,) * 4, pooled=True).dense_output_reordered
    assert conv_work((1, 3, 8, 8), (8, 8), (3, 3), (1, 1), (1, 1), (1,) * 4).dense_output_reordered

COMPILED = KernelCosts(**{**vars(COSTS), "compiled_ns_per_nonzero_row": 0.05, "compiled_ns_per_input_load_row": 0.5})
# A call whose image spans enough tiles for compiled code.
LARGE_IMAGE = ConvWork(64 * 6, 0, tiles_per_image=6)


def test_compiled_code_has_costs_of_its_own_where_it_runs():
    stored = {"csr": 1000, "block4": 1000}
    compiled = CostModel(COMPILED, "avx512").predict(64, 576, 32, stored, LARGE_IMAGE, input_loads=100)
    assert compiled.sparse_ns - COSTS.sparse_ns_per_call == pytest.approx(64 * 6 * (0.05 * 1000 + 0.5 * 100))
    # The tile kernels: too few tiles, a family without compiled code, a GEMM.
    tile_ns = COSTS.sparse_ns_per_call + 0.2 * 1000 * 64 * 6
    assert CostModel(COMPILED, "avx2").predict(64, 576, 32, stored, LARGE_IMAGE, 100).sparse_ns == pytest.approx(tile_ns)
    small = dataclasses.replace(LARGE_IMAGE, tiles_per_image=5)
    assert CostModel(COMPILED, "avx512").predict(64, 576, 32, stored, small, 100).sparse_ns == pytest.approx(tile_ns)
    gemm = CostModel(COMPILED, "avx512").predict(64 * 6, 576, 32, stored, None, 100)
    assert gemm.sparse_ns == pytest.approx(tile_ns)
    # block4 weights always run on tile kernels.
    assert COMPILED.sparse_ns(64, 32, "block4", 1000, LARGE_IMAGE, 100) == COMPILED.sparse_ns(64, 32, "block4", 1000, LARGE_IMAGE)


@pytest.mark.parametrize(
    "family, tiles, tile_finishers, n, density, expected",
    [
        ("avx512", 6, False, 64, 0.01, True),
        ("avx512vnni", 6, False, 64, 0.01, True),
        ("avx2", 6, False, 64, 0.5, False),
        ("scalar", 6, False, 64, 0.5, False),
        ("avx512", 5, False, 64, 0.5, False),
        # Where the tile kernels would finish Y: compiled from 4 weights per input of a block of
        # up to 28 channels.
        ("avx512", 6, True, 64, 4 / 28, True),
        ("avx512", 6, True, 64, 3.9 / 28, False),
        ("avx512", 6, True, 8, 0.5, True),
        ("avx512", 6, True, 8, 0.45, False),
    ],
)
def test_runs_compiled_mirrors_the_provider(family, tiles, tile_finishers, n, density, expected):
    conv = ConvWork(64 * tiles, 0, tiles_per_image=tiles, tile_finishers=tile_finishers)
    assert runs_compiled(family, conv, 100, n, density * 100 * n) == expected


def test_weights_past_the_compiled_limit_run_on_tile_kernels():
    assert runs_compiled("avx512", LARGE_IMAGE, 4608, 512, 1 << 20)
    assert not runs_compiled("avx512", LARGE_IMAGE, 4608, 512, (1 << 20) + 1)


def test_break_even_counts_the_loads_that_each_density_needs():
    # Loads only: one block (N = 28) loads input k once when any of its 28 weights there is
    # nonzero, so at density d the load term is 1 - (1 - d)^28 of its dense value.
    costs = KernelCosts(**{**vars(COSTS), "compiled_ns_per_input_load_row": 1.0})
    model = CostModel(costs, "avx512")
    m, k, n = 64 * 6, 1024, 28
    dense_ns = model.predict(m, k, n, {"csr": 0, "block4": 0}, LARGE_IMAGE).dense_ns
    loads_at_break_even = (dense_ns - costs.sparse_ns_per_call) / (costs.compiled_ns_per_input_load_row * m)
    density = 1 - (1 - loads_at_break_even / k) ** (1 / n)
    assert model.break_even_sparsity(m, k, n, "csr", LARGE_IMAGE) == pytest.approx(1 - density)


def test_break_even_follows_the_kernels_that_each_density_runs_on():
    # Where the tile kernels would finish Y, densities below 4/28 run on them: csr breaks even
    # where their 0.2 ns per weight meets dense's 0.02 ns per MAC, at 10% density; compiled code,
    # which pays for its loads, breaks even lower.
    model = CostModel(COMPILED, "avx512")
    finishing = dataclasses.replace(LARGE_IMAGE, tile_finishers=True)
    m, k, n = 64 * 6, 1024, 28
    assert model.break_even_sparsity(m, k, n, "csr", finishing) == pytest.approx(0.9)
    assert model.break_even_sparsity(m, k, n, "csr", LARGE_IMAGE) > 0.91


def test_break_even_is_at_an_end_when_one_side_always_wins():
    costly_call = KernelCosts(**{**vars(COSTS), "sparse_ns_per_call": 2 * COSTS.dense_ns_per_call})
    assert CostModel(costly_call, "test").break_even_sparsity(64, 1, 1, "csr") == 1.0
    cheap = KernelCosts(**{**vars(COSTS), "csr_ns_per_nonzero_row": 0.001, "sparse_ns_per_call": 0.0})
    assert CostModel(cheap, "test").break_even_sparsity(64, 1024, 1024, "csr") == 0.0


def test_conv_rows_are_output_pixels_with_one_image_for_a_symbolic_batch():
    assert conv_rows((2, 64, 7, 7)) == 98
    assert conv_rows(("batch", 64, 7, 7)) == 49
    assert conv_rows(("batch", 64, "h", "w")) == REPRESENTATIVE_M
    assert conv_rows(None) == REPRESENTATIVE_M


def test_break_even_is_where_predicted_times_cross():
    model = CostModel(COSTS, "test")
    # Dense at 0.02 ns/MAC against csr at 0.2 ns/nonzero: csr wins below 10% density.
    assert model.break_even_sparsity(64, 1024, 1024, "csr") == pytest.approx(0.9)
    # A 4-channel block costs 0.4 ns for 4 MACs: wins below 20% of blocks stored.
    assert model.break_even_sparsity(64, 1024, 1024, "block4") == pytest.approx(0.8)


def test_predict_picks_the_faster_format_from_stored_block_counts():
    model = CostModel(COSTS, "test")
    k = n = 256
    unstructured = model.predict(64, k, n, {"csr": k * n // 20, "block4": k * n // 4 * 0.19})
    assert unstructured.format == "csr" and unstructured.sparse_wins
    blocked = model.predict(64, k, n, {"csr": k * n // 20, "block4": k * n // 4 // 20})
    assert blocked.format == "block4" and blocked.speedup > unstructured.speedup
    dense = model.predict(64, k, n, {"csr": k * n, "block4": k * n // 4})
    assert not dense.sparse_wins


def test_representative_m():
    assert representative_m((2, 3)) == 6
    assert representative_m(("batch", 128)) == REPRESENTATIVE_M
    assert representative_m((None,)) == REPRESENTATIVE_M
