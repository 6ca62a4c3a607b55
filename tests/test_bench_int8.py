"""tools/bench_int8.py: its agreement check in quantization steps, and one tiny run end to end."""

import json

import numpy as np
import onnx
import pytest

from tests import int8_reference
from tools.bench_int8 import MAX_DIFF_STEPS, agreement, main, ort_int8_is_exact, output_step
from tools.model_builders import MlpConfig, build_mlp
from tools.quantize_model import quantize_model


def test_agreement_counts_whole_steps_and_the_share_that_differs():
    step = 0.04
    reference = step * np.arange(-8, 8, dtype=np.float32).reshape(4, 4)
    exact = agreement(reference, reference.copy(), step)
    assert (exact.max_steps, exact.differing_share) == (0, 0.0)
    candidate = reference.copy()
    candidate[0, 0] += 3 * step
    candidate[1, 2] -= step
    found = agreement(reference, candidate, step)
    assert (found.max_steps, found.differing_share) == (3, 2 / 16)
    assert found.matches
    candidate[3, 3] += (MAX_DIFF_STEPS + 1) * step
    assert not agreement(reference, candidate, step).matches


def test_output_step_is_the_scale_of_the_final_dequantize(tmp_path):
    fp32 = tmp_path / "mlp.onnx"
    onnx.save(build_mlp(MlpConfig(layers=2, hidden=32)), str(fp32))
    quantized = tmp_path / "mlp.int8.onnx"
    quantize_model(fp32, quantized)
    model = onnx.load(str(quantized))
    final = next(node for node in model.graph.node if "output" in node.output)
    scale = next(init for init in model.graph.initializer if init.name == final.input[1])
    assert output_step(quantized) == pytest.approx(onnx.numpy_helper.to_array(scale).item())
    with pytest.raises(ValueError, match="DequantizeLinear"):
        output_step(fp32)


def test_a_tiny_bert_runs_end_to_end_and_reuses_its_models(tmp_path, capsys):
    argv = [
        *("--models", "bert", "--bert-layers", "1", "--bert-seq", "8"),
        *("--sparsity", "0.9", "--block", "4k", "--time", "0.05", "--warmup", "1"),
        *("--model-dir", str(tmp_path), "--json"),
        # Verification might keep ORT's nodes on a model this small: this test is of the rest.
        "--no-verify",
    ]
    assert main(argv) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["workload"] == "bert 1L seq 8 batch 1, 90% 4-block (K)"
    assert result["rewritten_nodes"] > 0
    # SparseQGemm requantizes bit-identically to ORT's QLinearMatMul (docs/ops.md), where ORT's
    # own products are exact (without VNNI they saturate, and ORT is no reference).
    assert result["ort_exact"] == ort_int8_is_exact() == int8_reference.ort_is_exact()
    if result["ort_exact"]:
        assert (result["max_diff_steps"], result["differing_share"]) == (0, 0.0)
    assert result["outputs_match"]
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().err
