"""tools/op_profile.py: ORT's profile of a model and of its rewrite, by op type."""

import pytest

from tests.api_testing import save
from tools.model_builders import MlpConfig, build_mlp
from tools.op_profile import main

pytestmark = pytest.mark.usefixtures("cache_dir")


def test_profile_lists_each_engine_s_op_types(tmp_path, capsys):
    model = save(build_mlp(MlpConfig(layers=2, hidden=512, sparsity=0.95)), tmp_path / "mlp.onnx")
    assert main([model, "--runs", "3", "--no-verify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Each row: a label, then ORT's and ortsparse's milliseconds per run.
    rows = {line.split()[0]: [float(v) for v in line.split()[-2:]] for line in lines[2:]}
    totals = {label: rows.pop(label) for label in ("kernels", "wall")}
    # ORT fuses each MatMul with its bias Add (and Relu); SparseGemm takes both in the rewrite.
    assert rows["SparseGemm"][0] == 0 and rows["SparseGemm"][1] > 0
    for engine in (0, 1):
        by_op = sum(row[engine] for row in rows.values())
        assert totals["kernels"][engine] == pytest.approx(by_op, abs=1e-3 * len(rows))
        assert totals["wall"][engine] > 0
