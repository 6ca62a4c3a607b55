import dataclasses
import json

import numpy as np
import pytest

from ortsparse.rewriter.cost_data import (
    CONSERVATIVE_SPEEDUP,
    CpuIdentity,
    calibration_path,
    cost_models,
    shipped_data,
)
from ortsparse.rewriter.cost_model import ConservativeCostModel, CostModel, KernelCosts
from ortsparse.rewriter.packing import count_stored_blocks
from ortsparse.rewriter.policy import SparsityPolicy

ZEN3 = next(data for data in shipped_data() if data.cpu.family == 25)
UNMEASURED = CpuIdentity("GenuineIntel", 6, 60, "avx2", "Intel Core (Haswell)")

COSTS = KernelCosts(
    dense_ns_per_call=1000.0,
    dense_ns_per_mac=0.02,
    sparse_ns_per_call=1000.0,
    sparse_ns_per_output=0.0,
    csr_ns_per_nonzero_row=0.2,
    block4_ns_per_block_row=0.4,
)


def test_a_shipped_measurement_serves_its_own_cpu_model_only(tmp_path):
    own = cost_models(ZEN3.cpu, "avx2", calibration_dir=tmp_path)
    assert isinstance(own.gemm, CostModel) and "measured on this CPU" in own.source
    assert own.gemm.costs == KernelCosts(**ZEN3.gemm["avx2"])
    # Zen 3's brand string on another model of its family: not the same CPU.
    sibling = dataclasses.replace(ZEN3.cpu, model_number=33)
    other = cost_models(sibling, "avx2", calibration_dir=tmp_path)
    assert isinstance(other.gemm, ConservativeCostModel)
    assert "no cost-model data for" in other.source and "ortsparse calibrate" in other.source


def test_without_data_for_this_cpu_every_measured_cpu_is_consulted(tmp_path):
    models = cost_models(UNMEASURED, "avx2", calibration_dir=tmp_path)
    measured = [data for data in shipped_data() if "avx2" in data.gemm]
    assert len(measured) >= 2
    assert isinstance(models.conv, ConservativeCostModel)
    assert [model.costs for model in models.gemm.models] == [
        KernelCosts(**data.gemm["avx2"]) for data in measured
    ]
    assert models.gemm.required_speedup == CONSERVATIVE_SPEEDUP


def test_a_calibration_of_this_cpu_comes_first(tmp_path):
    data = json.loads(ZEN3.path.read_text())
    data["cpu"] = dataclasses.asdict(UNMEASURED)
    calibration_path(UNMEASURED, tmp_path).write_text(json.dumps(data))
    models = cost_models(UNMEASURED, "avx2", calibration_dir=tmp_path)
    assert isinstance(models.gemm, CostModel) and "calibrated" in models.source
    # The cache key follows the calibration's content.
    data["families"]["avx2"]["dense_ns_per_mac"] *= 2
    calibration_path(UNMEASURED, tmp_path).write_text(json.dumps(data))
    again = cost_models(UNMEASURED, "avx2", calibration_dir=tmp_path)
    assert again.fingerprint != models.fingerprint


def test_an_unreadable_calibration_is_as_none(tmp_path):
    calibration_path(UNMEASURED, tmp_path).write_text("{not json")
    models = cost_models(UNMEASURED, "avx2", calibration_dir=tmp_path)
    assert isinstance(models.gemm, ConservativeCostModel)


def test_a_family_the_measurement_lacks_is_not_taken_from_it(tmp_path):
    # Zen 3's file measures avx2 only: its scalar family is predicted conservatively.
    models = cost_models(ZEN3.cpu, "scalar", calibration_dir=tmp_path)
    assert isinstance(models.gemm, ConservativeCostModel)


def test_conservative_prediction_takes_the_least_favourable_cpu_and_a_margin():
    fast_dense = KernelCosts(**{**vars(COSTS), "dense_ns_per_mac": 0.01})
    model = ConservativeCostModel(
        [CostModel(COSTS, "test"), CostModel(fast_dense, "test")], "test", 1.25, "test"
    )
    k = n = 256
    stored = {"csr": k * n // 10, "block4": k * n // 4}
    worst = CostModel(fast_dense, "test").predict(64, k, n, stored)
    prediction = model.predict(64, k, n, stored)
    assert prediction.speedup == pytest.approx(worst.speedup)
    assert prediction.sparse_wins == (worst.speedup > 1.25)
    # Break-even moves up with the margin and to the least favourable CPU.
    single = CostModel(fast_dense, "test").break_even_sparsity(64, k, n, "csr")
    assert model.break_even_sparsity(64, k, n, "csr") > single


def test_a_layer_predicted_to_break_even_is_kept_without_data_for_this_cpu():
    model = ConservativeCostModel([CostModel(COSTS, "test")], "test", 1.25, "test")
    policy = SparsityPolicy(model, model)
    k = n = 256
    # About 1.1x faster by the one CPU's data: kept, and the reason says why.
    weight = (np.random.default_rng(0).random((k, n)) < 0.09).astype(np.float32)
    prediction = model.predict(
        64, k, n, {f: count_stored_blocks(weight, f) for f in ("csr", "block4")}
    )
    assert 1.0 < prediction.speedup < 1.25
    verdict = policy.judge(weight, 64)
    assert not verdict.rewrite and "short of the 1.25x" in verdict.reason


def test_on_zen3_a_dense_small_weight_is_kept(tmp_path):
    # The Zen 3 measurement that showed the old shipped data wrong there: a 0%-sparse 32x12
    # weight was rewritten as block4, "predicted 1.80x faster".
    models = cost_models(ZEN3.cpu, "avx2", calibration_dir=tmp_path)
    policy = SparsityPolicy(models.gemm, models.conv)
    weight = np.random.default_rng(0).standard_normal((32, 12)).astype(np.float32)
    assert not policy.judge(weight, 64).rewrite
