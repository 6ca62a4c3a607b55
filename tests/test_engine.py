"""ortsparse.compile_model and its Engine: DeepSparse's engine API over the rewritten model."""

import numpy as np
import ortsparse
import pytest
from ortsparse import isa
from ortsparse.benchmark import available_cores

from tests.api_testing import assert_close, mlp_input, ort_outputs, save, sparse_mlp

pytestmark = pytest.mark.usefixtures("cache_dir")


@pytest.fixture
def model_path(tmp_path):
    return save(sparse_mlp(), tmp_path / "mlp.onnx")


def test_run_matches_onnxruntime(model_path):
    engine = ortsparse.compile_model(model_path, batch_size=3, num_cores=1)
    inputs = [mlp_input(3)]
    expected = ort_outputs(sparse_mlp(), {"A": inputs[0]})
    assert_close(engine.run(inputs), expected)
    assert_close(engine(inputs), expected)
    outputs, seconds = engine.timed_run(inputs)
    assert_close(outputs, expected)
    assert isinstance(seconds, float) and seconds > 0
    mapped = engine.mapped_run(inputs)
    assert list(mapped) == ["Y"]
    assert_close([mapped["Y"]], expected)


def test_properties_and_repr(model_path):
    engine = ortsparse.compile_model(model_path, batch_size=2, num_cores=1)
    assert isinstance(engine, ortsparse.Engine)
    assert (engine.model_path, engine.batch_size, engine.num_cores) == (model_path, 2, 1)
    assert (engine.input_names, engine.output_names) == (["A"], ["Y"])
    report = isa.cpu_report()
    assert engine.cpu_avx_type == isa.cpu_avx_type(report)
    assert engine.cpu_avx_type in {"avx512", "avx2", "scalar"}
    assert engine.cpu_vnni is isa.cpu_vnni(report)
    assert engine.session.get_session_options().intra_op_num_threads == 1
    text = repr(engine)
    for part in (repr(model_path), "batch_size=2", "num_cores=1", "cpu_avx_type", "cpu_vnni"):
        assert part in text
    assert "MatMul/Gemm/Conv" in text


def test_cpu_avx_type_follows_the_kernel_family_in_use(model_path, monkeypatch):
    monkeypatch.setenv("ORTSPARSE_ISA", "scalar")  # every CPU can lower to it
    engine = ortsparse.compile_model(model_path)
    assert (engine.cpu_avx_type, engine.cpu_vnni) == ("scalar", False)


@pytest.mark.parametrize(
    "family, avx_type, vnni",
    [
        ("avx512vnni", "avx512", True),
        ("avx512", "avx512", False),
        ("avxvnni", "avx2", True),
        ("avx2", "avx2", False),
        ("scalar", "scalar", False),
    ],
)
def test_cpu_avx_type_and_vnni_of_each_family(family, avx_type, vnni):
    report = {"kernel_family": family}
    assert (isa.cpu_avx_type(report), isa.cpu_vnni(report)) == (avx_type, vnni)


def test_defaults_and_a_modelproto(model_path):
    engine = ortsparse.compile_model(sparse_mlp())
    assert (engine.model_path, engine.batch_size, engine.num_cores) == (None, 1, available_cores())
    (generated,) = engine.generate_random_inputs()
    assert generated.shape == (1, 16) and generated.dtype == np.float32
    assert engine.run([generated])[0].shape == (1, 8)


def test_benchmark_reports_the_clis_statistics(model_path):
    engine = ortsparse.compile_model(model_path, batch_size=4, num_cores=1)
    results = engine.benchmark(num_iterations=7, num_warmup_iterations=2)
    assert isinstance(results, ortsparse.BenchmarkResults)
    assert results.iterations == 7 and results.batch_size == 4
    assert results.items_per_second == pytest.approx(7 * 4 / results.seconds)
    for value in (results.latency_mean_ms, results.latency_p90_ms, results.latency_p99_ms):
        assert value > 0
    lines = str(results).splitlines()
    assert lines[0].startswith("Throughput (items/sec): ")
    assert lines[-1] == "Iterations: 7"
    given = engine.benchmark([mlp_input(4)], num_iterations=3, num_warmup_iterations=0)
    assert given.iterations == 3


@pytest.mark.parametrize(
    "inputs, message",
    [
        ([], "takes 1 input"),
        ([mlp_input(3), mlp_input(3)], "takes 1 input"),
        ([mlp_input(5)], "batch size 5, the engine was compiled for 3"),
    ],
    ids=["none", "two", "batch"],
)
def test_inputs_that_do_not_fit(model_path, inputs, message):
    engine = ortsparse.compile_model(model_path, batch_size=3)
    with pytest.raises(ValueError, match=message):
        engine.run(inputs)


def test_a_fixed_batch_is_kept(tmp_path):
    path = save(sparse_mlp(batch=4), tmp_path / "fixed.onnx")
    assert ortsparse.compile_model(path, batch_size=4).run([mlp_input(4)])[0].shape == (4, 8)
    with pytest.raises(ValueError, match="fixed batch dimension of 4"):
        ortsparse.compile_model(path, batch_size=2)


@pytest.mark.parametrize(
    "arguments", [{"batch_size": 0}, {"num_cores": 0}], ids=["batch_size", "num_cores"]
)
def test_bad_arguments(model_path, arguments):
    with pytest.raises(ValueError, match="must be at least 1"):
        ortsparse.compile_model(model_path, **arguments)


def test_benchmark_iteration_counts_are_checked(model_path):
    with pytest.raises(ValueError, match="at least 1 iteration"):
        ortsparse.compile_model(model_path).benchmark(num_iterations=0)
