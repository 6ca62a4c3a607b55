import json

import pytest

from ortsparse.rewriter.cost_model import (
    DATA_PATH,
    REPRESENTATIVE_M,
    WINDOW_KINDS,
    CostModel,
    KernelCosts,
    conv_rows,
    representative_m,
    window_kind,
)

COSTS = KernelCosts(
    dense_ns_per_call=1000.0,
    dense_ns_per_mac=0.02,
    sparse_ns_per_call=1000.0,
    sparse_ns_per_output=0.0,
    csr_ns_per_nonzero_row=0.2,
    block4_ns_per_block_row=0.4,
)


def test_shipped_data_is_measured_and_complete():
    data = json.loads(DATA_PATH.read_text())
    assert data["measured"] is True
    assert data["default_family"] in data["families"]
    for constants in data["families"].values():
        costs = KernelCosts(**constants)
        assert all(value >= 0 for value in vars(costs).values())
        assert (
            costs.dense_ns_per_mac > 0
            and costs.csr_ns_per_nonzero_row > 0
            and costs.block4_ns_per_block_row > 0
        )


def test_shipped_conv_data_has_every_window_kind_of_every_family():
    data = json.loads(DATA_PATH.read_text())
    assert set(data["conv_families"]) == set(data["families"])
    for family in data["conv_families"]:
        models = CostModel.load_conv(family=family)
        assert set(models) == set(WINDOW_KINDS)
        assert all(model.costs.sparse_ns_per_panel_element > 0 for model in models.values())


@pytest.mark.parametrize("family", ["scalar", "avx2", "avx512", "avx512vnni"])
def test_conv_packing_makes_a_strided_large_map_gain_less_than_a_small_map(family):
    """The same 3x3 64->128 weight at 90% sparsity: the stride-2 80x80 map packs 32x the
    panel elements of the 7x7 map through the scalar gather, which the sparsity does not shrink."""
    models = CostModel.load_conv(family=family)
    k, n = 64 * 9, 128
    stored_blocks = {"csr": k * n // 10, "block4": k * n // 4 // 10 * 3}
    large = models["strided"].predict(40 * 40, k, n, stored_blocks)
    small = models["unit_stride"].predict(7 * 7, k, n, stored_blocks)
    assert large.speedup < small.speedup


def test_packing_cost_moves_break_even_up():
    packing = KernelCosts(**{**vars(COSTS), "sparse_ns_per_panel_element": 1.0})
    without, with_packing = CostModel(COSTS, "test"), CostModel(packing, "test")
    assert with_packing.break_even_sparsity(
        64, 1024, 1024, "csr"
    ) > without.break_even_sparsity(64, 1024, 1024, "csr")


@pytest.mark.parametrize(
    "kernel,strides,pads,expected",
    [
        ((1, 1), (1, 1), (0, 0, 0, 0), "copy"),
        ((1, 1), (1, 1), (1, 1, 1, 1), "unit_stride"),
        ((3, 3), (1, 1), (1, 1, 1, 1), "unit_stride"),
        ((3, 3), (2, 1), (1, 1, 1, 1), "unit_stride"),  # rows are skipped, columns still runs
        ((3, 3), (2, 2), (1, 1, 1, 1), "strided"),
        ((1, 1), (2, 2), (0, 0, 0, 0), "strided"),
    ],
)
def test_window_kind_follows_the_panel_packing_paths(kernel, strides, pads, expected):
    assert window_kind(kernel, strides, pads) == expected


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


def test_unknown_family_falls_back_to_the_default_one():
    model = CostModel.load(family="no-such-family")
    assert model.family == json.loads(DATA_PATH.read_text())["default_family"]


def test_representative_m():
    assert representative_m((2, 3)) == 6
    assert representative_m(("batch", 128)) == REPRESENTATIVE_M
    assert representative_m((None,)) == REPRESENTATIVE_M
