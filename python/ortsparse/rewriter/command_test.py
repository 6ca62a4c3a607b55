import argparse

import onnx
import pytest
from onnx import helper

from ortsparse.rewriter.command import add_rewrite_arguments, run_rewrite
from ortsparse.rewriter.cost_data import shipped_data
from tests.rewriter_testing import make_model, op_types, sparse_weight


def run_command(*argv):
    parser = argparse.ArgumentParser(prog="rewrite-model")
    add_rewrite_arguments(parser)
    return run_rewrite(parser.parse_args([str(arg) for arg in argv]))


@pytest.fixture
def model_file(tmp_path):
    model = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm")],
        {"A": ["m", 16]},
        {"Y": ["m", 8]},
        {"W": sparse_weight(16, 8, 0.5)},
    )
    path = tmp_path / "in.onnx"
    onnx.save_model(model, path)
    return path


def test_rewrite_with_report_and_min_sparsity(model_file, tmp_path, capsys):
    out_path = tmp_path / "out.onnx"
    assert (
        run_command(model_file, out_path, "--report", "--min-sparsity", "0.3", "--no-verify") == 0
    )
    captured = capsys.readouterr()
    assert "rewritten: sparsity" in captured.out and "mm" in captured.out
    assert "[rewrite]" in captured.err and "1 of 1" in captured.err
    assert op_types(onnx.load(out_path)) == ["SparseGemm"]


@pytest.mark.parametrize("content", [None, b"garbage \x00\x01"], ids=["missing", "not onnx"])
def test_bad_input_exits_2_with_a_one_line_message(tmp_path, capsys, content):
    in_path = tmp_path / "in.onnx"
    if content is not None:
        in_path.write_bytes(content)
    assert run_command(in_path, tmp_path / "out.onnx") == 2
    error_lines = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")
    ]
    assert len(error_lines) == 1 and str(in_path) in error_lines[0]


def test_malformed_model_exits_2(tmp_path, capsys):
    model = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])],
        {"A": ["m", 10]},
        {"Y": ["m", 8]},
        {"W": sparse_weight(16, 8)},
    )
    in_path = tmp_path / "in.onnx"
    onnx.save_model(model, in_path)
    assert run_command(in_path, tmp_path / "out.onnx") == 2
    assert "malformed" in capsys.readouterr().err


def test_unwritable_output_exits_1(model_file, tmp_path, capsys):
    assert run_command(model_file, tmp_path / "no-such-dir" / "out.onnx") == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1.5", "-0.1", "half"])
def test_min_sparsity_must_be_a_fraction(model_file, tmp_path, value):
    with pytest.raises(SystemExit) as exit_info:
        run_command(model_file, tmp_path / "out.onnx", "--min-sparsity", value)
    assert exit_info.value.code == 2


def test_cost_data_of_another_cpu_decides_and_skips_verification(model_file, tmp_path, capsys):
    zen3 = next(data for data in shipped_data() if data.cpu.family == 25)
    out_path = tmp_path / "out.onnx"
    assert run_command(model_file, out_path, "--report", "--cost-data", zen3.path) == 0
    captured = capsys.readouterr()
    assert "decided by: cost model measured on AMD EPYC (AuthenticAMD family 25" in captured.out
    assert "verif" not in captured.err


def test_cost_data_that_is_not_a_measurement_exits_2(model_file, tmp_path, capsys):
    bad = tmp_path / "costs.json"
    bad.write_text("{}")
    assert run_command(model_file, tmp_path / "out.onnx", "--cost-data", bad) == 2
    assert "is not a cost-model measurement" in capsys.readouterr().err
