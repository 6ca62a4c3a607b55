import json

import pytest

from ortsparse.rewriter.cost_model import (
    DATA_PATH,
    REPRESENTATIVE_M,
    CostModel,
    KernelCosts,
    representative_m,
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
