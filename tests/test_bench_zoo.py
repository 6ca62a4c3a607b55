"""tools/bench_zoo.py end to end on the zoo's text encoder: two integer token inputs fed, the
rewrite timed beside ORT, outputs compared (no timing is asserted). Every projection at least half
zero is rewritten (--min-sparsity), whatever this CPU's cost model would decide."""

import json

from tools.bench_zoo import main

# 80% pruned, rewritten unverified, timed for a moment.
QUICK = ["--sparsity", "0.8", "--time", "0.05", "--warmup", "0", "--min-sparsity", "0.5"]


def test_the_text_encoder_is_fed_every_input_and_its_outputs_match(tmp_path, capsys):
    arguments = ["--names", "minilm_ort", *QUICK, "--no-verify", "--model-dir", str(tmp_path)]
    code = main([*arguments, "--json"])
    (result,) = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["outputs_match"]
    assert result["input_shape"] == [1, 128]
    assert result["workload"] == "minilm_ort seq 128, 80% unstructured"


def test_a_model_deepsparse_cannot_run_gets_a_dash_not_a_failure(tmp_path, capsys):
    arguments = ["--names", "minilm", *QUICK, "--no-verify", "--model-dir", str(tmp_path)]
    failing_python = "/bin/false"  # stands in for a DeepSparse that refuses the model
    code = main([*arguments, "--deepsparse", failing_python])
    captured = capsys.readouterr()
    assert code == 0
    assert "DeepSparse could not run minilm_s0.8_b1.onnx" in captured.err
    (row,) = [line for line in captured.out.splitlines() if line.startswith("minilm seq 128")]
    assert row.split()[-4:] == ["-", "-", "18/24", "match"]
