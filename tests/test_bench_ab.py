"""tools/bench_ab.py: paired timing of two ortsparse sessions and ORT in one process."""

import re

import onnx
import ortsparse
import pytest
from ortsparse.rewriter import rewrite_model

from tests.api_testing import save
from tools.bench_ab import main
from tools.model_builders import MlpConfig, build_mlp


@pytest.fixture
def mlp(tmp_path):
    return save(build_mlp(MlpConfig(layers=2, hidden=256, sparsity=0.9)), tmp_path / "mlp.onnx")


def ratios(output: str) -> dict[str, float]:
    return {
        match[0]: float(match[1])
        for match in re.findall(r"^(\S+/\S+) time: median ([0-9.]+)", output, flags=re.M)
    }


def test_reports_each_pair_s_median_ratio(mlp, capsys):
    library = ortsparse.library_path()
    args = [mlp, "--library-a", library, "--library-b", library, "--rounds", "2", "--slice", "0.01"]
    assert main(args + ["--input-shape", "input=4,256"]) == 0
    captured = capsys.readouterr()
    assert set(ratios(captured.out)) == {"A/B", "ORT/A", "ORT/B"}
    assert all(value > 0 for value in ratios(captured.out).values())
    assert "inputs input=[4, 256]" in captured.err
    assert "rewriting" in captured.err  # A's model was made here, and B runs the same one


def test_takes_given_rewrites(mlp, tmp_path, capsys):
    rewritten = tmp_path / "rewritten.onnx"
    onnx.save(rewrite_model(onnx.load(mlp), min_sparsity=0.5).model, str(rewritten))
    args = [mlp, "--rewritten-a", str(rewritten), "--rewritten-b", str(rewritten)]
    assert main(args + ["--rounds", "1", "--slice", "0.01"]) == 0
    captured = capsys.readouterr()
    assert "rewriting" not in captured.err
    assert set(ratios(captured.out)) == {"A/B", "ORT/A", "ORT/B"}


def test_unknown_input_name_is_refused(mlp, capsys):
    assert main([mlp, "--input-shape", "images=1,3", "--rounds", "1"]) == 2
    assert "no input named images" in capsys.readouterr().err


def test_slice_must_be_positive(mlp, capsys):
    assert main([mlp, "--slice", "0"]) == 2
    assert "--slice must be positive" in capsys.readouterr().err
