"""`ortsparse benchmark`: every flag, the output lines, the JSON export's schema
(docs/benchmark.md) and bad input. Runs are a fraction of a second on a tiny model: these tests
check what is run and reported, never how fast."""

import json
import subprocess
import sys

import pytest
from onnx import TensorProto, helper
from ortsparse.cli import build_parser, main
from ortsparse.model_versions import newest_model_versions

from tests.api_testing import FORCE_REWRITE, save, sparse_mlp
from tests.rewriter_testing import make_model

pytestmark = pytest.mark.usefixtures("cache_dir")

SHORT = ["-t", "0.05", "-w", "0"]
RESULT_KEYS = [
    "Original Model Path",
    "Engine",
    "Batch Size",
    "Input Shapes",
    "Scenario",
    "Cores",
    "Throughput (items/sec)",
    "Latency Mean (ms/batch)",
    "Latency Median (ms/batch)",
    "Latency Std (ms/batch)",
    "Latency p90 (ms/batch)",
    "Latency p99 (ms/batch)",
    "Iterations",
]


@pytest.fixture
def model(tmp_path):
    return save(sparse_mlp(), tmp_path / "mlp.onnx")


def benchmark(capsys, *argv, short=True):
    """Unverified, unless asked for: verification may keep ORT's nodes on the tiny model, and
    these tests are of what is run and printed."""
    verify = [] if "--verify" in argv else ["--no-verify"]
    argv = [arg for arg in argv if arg != "--verify"]
    code = main(["benchmark", *map(str, argv), *verify, *(SHORT if short else [])])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def blocks(out):
    """The result blocks on stdout, each as {key: value}, and the lines after them."""
    parsed, rest = [], []
    for chunk in out.strip().split("\n\n"):
        lines = chunk.splitlines()
        if lines[0].startswith("Original Model Path: "):
            parsed.append(dict(line.split(": ", 1) for line in lines))
        else:
            rest += lines
    return parsed, rest


def test_default_run_rewrites_and_prints_deepsparse_lines(model, capsys):
    code, out, err = benchmark(capsys, model, "--min-sparsity", FORCE_REWRITE)
    assert code == 0
    (block,), rest = blocks(out)
    assert list(block) == RESULT_KEYS and rest == []
    assert block["Original Model Path"] == model
    assert block["Engine"] == "ortsparse (2 of 2 MatMul/Gemm/Conv nodes rewritten)"
    assert (block["Batch Size"], block["Input Shapes"], block["Scenario"]) == (
        "1",
        "A=[1,16]",
        "sync",
    )
    assert int(block["Iterations"]) >= 1
    assert float(block["Throughput (items/sec)"]) > 0
    assert "[benchmark]" in err and "rewrite:" in err


def test_batch_size(model, capsys):
    code, out, _ = benchmark(capsys, model, "-b", 4, "-q")
    (block,), _ = blocks(out)
    assert (code, block["Batch Size"], block["Input Shapes"]) == (0, "4", "A=[4,16]")


def test_input_shapes(model, capsys):
    code, out, _ = benchmark(capsys, model, "-shapes", "[3,16]", "-q")
    (block,), _ = blocks(out)
    assert (code, block["Batch Size"], block["Input Shapes"]) == (0, "3", "A=[3,16]")


def test_symbolic_dims_of_several_inputs(tmp_path, capsys):
    nodes = [
        helper.make_node("ReduceSum", ["ids"], ["total"], keepdims=0),
        helper.make_node("Cast", ["total"], ["total_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["x"], ["x_sum"], keepdims=0),
        helper.make_node("Add", ["total_f", "x_sum"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two inputs",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [])],
    )
    model = newest_model_versions().make_model(graph)
    path = save(model, tmp_path / "two.onnx")
    # 'seq' is not the batch: its size is asked for, not guessed.
    code, out, err = benchmark(capsys, path, "-b", 2, "-e", "onnxruntime", "-q")
    assert code == 2 and out == ""
    assert "input 'ids': 'seq' (axis 1); input 'x': 'seq' (axis 1)" in err
    assert '-shapes "[?,?],[?,?,4]"' in err
    code, out, _ = benchmark(capsys, path, "-shapes", "[2,5],[2,5,4]", "-e", "onnxruntime", "-q")
    (block,), _ = blocks(out)
    assert (code, block["Input Shapes"]) == (0, "ids=[2,5], x=[2,5,4]")


def test_num_cores(model, capsys, tmp_path):
    export = tmp_path / "out.json"
    code, out, _ = benchmark(capsys, model, "-ncores", 1, "-q", "-x", export)
    (block,), _ = blocks(out)
    assert (code, block["Cores"]) == (0, "1 (1 stream x 1 thread)")
    config = json.loads(export.read_text())["config"]
    assert (config["num_cores"], config["threads_per_stream"]) == (1, [1])


def test_async_scenario_with_streams(model, capsys, tmp_path):
    export = tmp_path / "out.json"
    code, out, _ = benchmark(
        capsys, model, "-s", "async", "-nstreams", 3, "-ncores", 4, "-q", "-x", export
    )
    (block,), _ = blocks(out)
    assert (code, block["Scenario"], block["Cores"]) == (0, "async", "4 (3 streams x 2/1 threads)")
    config = json.loads(export.read_text())["config"]
    assert (config["scenario"], config["num_streams"]) == ("async", 3)
    assert config["threads_per_stream"] == [2, 1, 1]


def test_async_default_streams(model, capsys):
    code, out, _ = benchmark(capsys, model, "-s", "async", "-ncores", 2, "-q")
    (block,), _ = blocks(out)
    assert (code, block["Cores"]) == (0, "2 (2 streams x 1 thread)")


def test_time_and_warmup_are_exported(model, capsys, tmp_path):
    export = tmp_path / "out.json"
    code, _, _ = benchmark(
        capsys, model, "-t", "0.07", "-w", "0.01", "-q", "-x", export, short=False
    )
    config = json.loads(export.read_text())["config"]
    assert (code, config["time"], config["warmup_time"]) == (0, 0.07, 0.01)


def test_onnxruntime_engine_runs_the_model_as_it_is(model, capsys, cache_dir):
    code, out, _ = benchmark(capsys, model, "-e", "onnxruntime", "-q")
    (block,), _ = blocks(out)
    assert (code, block["Engine"]) == (0, "onnxruntime")
    assert not cache_dir.exists()


def test_onnxruntime_engine_runs_a_rewritten_model(model, capsys, tmp_path, cache_dir):
    benchmark(capsys, model, "--min-sparsity", FORCE_REWRITE, "-q")
    (entry,) = cache_dir.iterdir()
    export = tmp_path / "out.json"
    code, _, _ = benchmark(capsys, entry / "model.onnx", "-e", "onnxruntime", "-q", "-x", export)
    (run,) = json.loads(export.read_text())["runs"]
    assert (code, run["has_ortsparse_ops"], run["rewritten_nodes"]) == (0, True, None)


def test_compare_prints_both_and_the_ratio(model, capsys, tmp_path):
    export = tmp_path / "out.json"
    code, out, _ = benchmark(
        capsys, model, "--compare", "--min-sparsity", FORCE_REWRITE, "-q", "-x", export
    )
    (ort_block, sparse_block), rest = blocks(out)
    assert code == 0
    assert ort_block["Engine"] == "onnxruntime"
    assert sparse_block["Engine"].startswith("ortsparse (2 of 2")
    (ratio_line,) = rest
    assert ratio_line.startswith("Speedup (ortsparse / onnxruntime throughput): ")
    exported = json.loads(export.read_text())
    runs = exported["runs"]
    assert [run["engine"] for run in runs] == ["onnxruntime", "ortsparse"]
    rates = [run["results"]["throughput_items_per_sec"] for run in runs]
    assert exported["throughput_ratio"] == pytest.approx(rates[1] / rates[0])
    assert ratio_line.endswith(f"{rates[1] / rates[0]:.2f}x")
    assert exported["config"]["engine"] == "compare"


def test_quiet_prints_only_results(model, capsys):
    code, out, err = benchmark(capsys, model, "-q")
    assert (code, err) == (0, "")
    assert blocks(out)[0]


def test_progress_while_measuring(model, capsys):
    code, _, err = benchmark(capsys, model, "-t", "1.2", "-w", "0", short=False)
    assert code == 0
    assert "[benchmark] ortsparse: measuring, 1 of 1.2 s," in err


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_results(results):
    assert set(results) == {
        "throughput_items_per_sec",
        "latency_ms_per_batch",
        "iterations",
        "seconds",
    }
    assert is_number(results["throughput_items_per_sec"]) and is_number(results["seconds"])
    assert isinstance(results["iterations"], int) and results["iterations"] >= 1
    assert set(results["latency_ms_per_batch"]) == {"mean", "median", "std", "p90", "p99"}
    assert all(is_number(value) for value in results["latency_ms_per_batch"].values())


def test_json_export_schema(model, capsys, tmp_path, cache_dir):
    export = tmp_path / "out.json"
    code, _, _ = benchmark(capsys, model, "--min-sparsity", FORCE_REWRITE, "-q", "-x", export)
    exported = json.loads(export.read_text())
    assert code == 0
    assert set(exported) == {
        "ortsparse_version",
        "onnxruntime_version",
        "cpu",
        "config",
        "runs",
        "throughput_ratio",
    }
    assert exported["throughput_ratio"] is None
    assert set(exported["cpu"]) == {"model", "logical_cores", "cpu_avx_type", "cpu_vnni"}
    assert isinstance(exported["cpu"]["cpu_vnni"], bool)
    assert exported["config"] == {
        "model": model,
        "engine": "ortsparse",
        "batch_size": 1,
        "inputs": [{"name": "A", "type": "tensor(float)", "shape": [1, 16]}],
        "num_cores": exported["config"]["num_cores"],
        "scenario": "sync",
        "num_streams": 1,
        "threads_per_stream": [exported["config"]["num_cores"]],
        "time": 0.05,
        "warmup_time": 0.0,
        "min_sparsity": FORCE_REWRITE,
    }
    (run,) = exported["runs"]
    assert set(run) == {
        "engine",
        "model_path",
        "has_ortsparse_ops",
        "rewritten_nodes",
        "candidate_nodes",
        "results",
    }
    assert run["model_path"].startswith(str(cache_dir))
    assert (run["engine"], run["has_ortsparse_ops"]) == ("ortsparse", True)
    assert (run["rewritten_nodes"], run["candidate_nodes"]) == (2, 2)
    check_results(run["results"])


def test_fixed_batch_model(tmp_path, capsys):
    path = save(sparse_mlp(batch=4), tmp_path / "fixed.onnx")
    code, out, _ = benchmark(capsys, path, "-q")
    (block,), _ = blocks(out)
    assert (code, block["Batch Size"]) == (0, "4")
    code, out, err = benchmark(capsys, path, "-b", 2)
    assert (code, out) == (2, "")
    assert "error: input 'A' has a fixed batch dimension of 4, which ONNX Runtime cannot " in err


def assert_bad_input(code, out, err, message):
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-shapes", "[1,16"], "expected one [d0,d1,...] per model input"),
        (["-shapes", "1,16"], "expected one [d0,d1,...] per model input"),
        (["-shapes", "[0,16]"], "every dimension must be at least 1"),
        (["-shapes", "[1,16],[1,16]"], "2 shape(s) given for the model's 1 input(s) (A)"),
        (["-shapes", "[1,15]"], "'A' has the fixed size 16 at axis 1"),
        (["-shapes", "[1,16,1]"], "'A' has rank 2"),
        (["-b", "0"], "must be positive"),
        (["-ncores", "two"], "not an integer: 'two'"),
        (["-t", "-1"], "must be positive"),
        (["-w", "-1"], "must not be negative"),
        (["-s", "elastic"], "invalid choice: 'elastic'"),
        (["-nstreams", "2"], "-nstreams/--num_streams needs the async scenario"),
        (["--compare", "-e", "onnxruntime"], "not allowed with argument --compare"),
        (["-e", "deepsparse"], "invalid choice: 'deepsparse'"),
    ],
)
def test_bad_arguments_exit_2(model, capsys, arguments, message):
    try:
        code, out, err = benchmark(capsys, model, *arguments)
    except SystemExit as exit_info:  # argparse's own usage errors
        captured = capsys.readouterr()
        code, out, err = exit_info.code, captured.out, captured.err
    assert_bad_input(code, out, err, message)


def test_missing_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "missing.onnx"
    assert_bad_input(*benchmark(capsys, missing), f"error: cannot read {missing}")


def test_not_onnx_exits_2(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"garbage \x00\x01")
    assert_bad_input(*benchmark(capsys, garbage), f"error: {garbage} is not a valid ONNX model")


def test_malformed_model_exits_2(tmp_path, capsys):
    mismatched = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"])], {"A": ["m", 10]}, {"Y": ["m", 8]}
    )
    path = save(mismatched, tmp_path / "malformed.onnx")
    assert_bad_input(*benchmark(capsys, path), "is not a valid ONNX model")


def test_unwritable_export_exits_1(model, capsys, tmp_path):
    code, out, err = benchmark(capsys, model, "-q", "-x", tmp_path / "no-such-dir" / "out.json")
    assert code == 1 and "Throughput" in out
    assert "error: cannot write" in err


def test_unwritable_cache_warns_and_runs_the_rewrite_from_memory(
    model, capsys, tmp_path, monkeypatch
):
    blocker = tmp_path / "a-file"  # no directory can be made under it, even by root
    blocker.write_text("")
    monkeypatch.setenv("ORTSPARSE_CACHE_DIR", str(blocker / "cache"))
    export = tmp_path / "out.json"
    code, out, err = benchmark(capsys, model, "--min-sparsity", FORCE_REWRITE, "-q", "-x", export)
    assert code == 0
    assert err.startswith("warning: cannot write the ortsparse rewrite cache")
    (block,), _ = blocks(out)
    assert block["Engine"].startswith("ortsparse (2 of 2")
    (run,) = json.loads(export.read_text())["runs"]
    assert run["model_path"] is None and run["has_ortsparse_ops"]


def test_a_model_onnxruntime_cannot_load_exits_1(tmp_path, capsys):
    unknown_op = newest_model_versions().make_model(
        helper.make_graph(
            [helper.make_node("Frobnicate", ["X"], ["Y"], domain="example.unknown")],
            "unknown op",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])],
        ),
        [("example.unknown", 1)],
    )
    path = save(unknown_op, tmp_path / "unknown.onnx")
    code, out, err = benchmark(capsys, path, "-e", "onnxruntime")
    assert (code, out) == (1, "")
    assert f"error: onnxruntime failed on {path}: " in err and "Traceback" not in err


def test_help_lists_the_command():
    assert "benchmark" in build_parser().format_help()


def test_command_line_entry_point(model, cache_dir, tmp_path):
    """The installed command, as a user runs it: results on stdout, exit status 0; a bad -shapes
    string exits 2 with argparse's usage message and no traceback."""
    command = [sys.executable, "-m", "ortsparse", "benchmark", model, *SHORT, "-q"]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"Original Model Path: {model}\n")
    bad = subprocess.run(
        [*command, "-shapes", "[1;16]"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "usage: ortsparse benchmark" in bad.stderr and "Traceback" not in bad.stderr
