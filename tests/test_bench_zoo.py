"""tools/bench_zoo.py end to end on the zoo's text encoder: two integer token inputs fed, the
rewrite timed beside ORT, outputs compared (no timing is asserted)."""

import json

from tools.bench_zoo import main


def test_the_text_encoder_is_fed_every_input_and_its_outputs_match(tmp_path, capsys):
    arguments = ["--names", "minilm_ort", "--sparsity", "0.8", "--time", "0.05", "--warmup", "0"]
    code = main([*arguments, "--no-verify", "--model-dir", str(tmp_path), "--json"])
    (result,) = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["outputs_match"]
    assert result["input_shape"] == [1, 128]
    assert result["workload"] == "minilm_ort seq 128, 80% unstructured"
