"""What `ortsparse benchmark` feeds a model (ortsparse.inputs) and how it times it
(ortsparse.benchmark): shapes, every input type, the timing loop's counts and statistics."""

import threading
import time

import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from ortsparse.benchmark import BenchmarkResults, measure, session_runner, split_cores
from ortsparse.inputs import (
    SUPPORTED_TYPES,
    InputError,
    InputSpec,
    input_specs,
    parse_input_shapes,
    random_inputs,
    resolve_input_shapes,
)
from ortsparse.model_versions import newest_model_versions


@pytest.mark.parametrize(
    "text, shapes",
    [
        ("[1,3,224,224]", [[1, 3, 224, 224]]),
        ("[1,3,224,224],[1,128]", [[1, 3, 224, 224], [1, 128]]),
        (" [ 2 , 16 ] , [4] ", [[2, 16], [4]]),
        ("[]", [[]]),
    ],
)
def test_parse_input_shapes(text, shapes):
    assert parse_input_shapes(text) == shapes


@pytest.mark.parametrize(
    "text",
    ["", "1,3,224", "[1,3", "[1,x]", "[1,-3]", "[1.5]", "[1,,2]", "[1][2]", "[1],", "[0,3]"],
)
def test_parse_input_shapes_rejects(text):
    with pytest.raises(ValueError, match=r"\[1,3,224,224\]|at least 1"):
        parse_input_shapes(text)


def spec(name, shape, type_="tensor(float)"):
    return InputSpec(name, type_, tuple(shape))


def test_symbolic_dims_batch_from_the_leading_symbol_others_one():
    specs = [
        spec("ids", ["batch", "seq"], "tensor(int64)"),
        spec("image", [None, 3, "height", "width"]),
        spec("pairs", ["batch", "seq", "batch"]),  # the batch's symbol anywhere is the batch
        spec("scale", []),
    ]
    resolved = resolve_input_shapes(specs, 4)
    assert resolved.batch_size == 4
    assert resolved.shapes == {
        "ids": (4, 1),
        "image": (4, 3, 1, 1),
        "pairs": (4, 1, 4),
        "scale": (),
    }
    assert resolve_input_shapes(specs).batch_size == 1


def test_a_fixed_batch_is_the_default_and_cannot_change():
    specs = [spec("x", [8, 3]), spec("mask", ["batch", 3])]
    resolved = resolve_input_shapes(specs)
    assert resolved.batch_size == 8
    assert resolved.shapes == {"x": (8, 3), "mask": (8, 3)}
    with pytest.raises(InputError, match="'x' has a fixed batch dimension of 8.* cannot change"):
        resolve_input_shapes(specs, 2)


def test_given_shapes_replace_the_defaults():
    specs = [spec("ids", ["batch", "seq"]), spec("image", ["batch", 3])]
    resolved = resolve_input_shapes(specs, None, [[2, 128], [2, 3]])
    assert resolved.batch_size == 2
    assert resolved.shapes == {"ids": (2, 128), "image": (2, 3)}
    assert resolve_input_shapes(specs, 2, [[2, 128], [2, 3]]).batch_size == 2


@pytest.mark.parametrize(
    "batch_size, shapes, message",
    [
        (None, [[2, 128]], r"1 shape\(s\) given for the model's 2 input\(s\) \(ids, image\)"),
        (None, [[2, 128, 1], [2, 3]], "'ids' has rank 2"),
        (None, [[2, 128], [2, 4]], "'image' has the fixed size 3 at axis 1"),
        (4, [[2, 128], [2, 3]], "batch size 4 disagrees"),
    ],
    ids=["count", "rank", "fixed dim", "batch"],
)
def test_given_shapes_that_do_not_fit(batch_size, shapes, message):
    specs = [spec("ids", ["batch", "seq"]), spec("image", ["batch", 3])]
    with pytest.raises(InputError, match=message):
        resolve_input_shapes(specs, batch_size, shapes)


# Strings go separately: ORT's Python API takes them only as numpy arrays, and then gives every
# output back as one, which bfloat16 and float8 cannot be.
TYPE_NAMES = sorted(
    TensorProto.DataType.Name(value) for value in SUPPORTED_TYPES - {TensorProto.STRING}
)

# Those numpy lacks are ml_dtypes' (onnx before 1.19 maps them to float32, which ORT cannot take
# for them).
NUMPY_TYPES = {
    "BFLOAT16": ml_dtypes.bfloat16,
    "FLOAT8E4M3FN": ml_dtypes.float8_e4m3fn,
    "FLOAT8E4M3FNUZ": ml_dtypes.float8_e4m3fnuz,
    "FLOAT8E5M2": ml_dtypes.float8_e5m2,
    "FLOAT8E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
}


def identity_session(onnx_types):
    """A session passing one input of each type straight through."""
    nodes, inputs, outputs = [], [], []
    for index, onnx_type in enumerate(onnx_types):
        nodes.append(helper.make_node("Identity", [f"x{index}"], [f"y{index}"]))
        inputs.append(helper.make_tensor_value_info(f"x{index}", onnx_type, ["batch", "n"]))
        outputs.append(helper.make_tensor_value_info(f"y{index}", onnx_type, ["batch", "n"]))
    graph = helper.make_graph(nodes, "identity", inputs, outputs)
    # Identity takes every type from opset 21 on, the newest opset of every supported onnxruntime.
    model = newest_model_versions().make_model(graph)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_random_inputs_of_every_type_onnxruntime_takes():
    onnx_types = [getattr(TensorProto, name) for name in TYPE_NAMES]
    session = identity_session(onnx_types)
    specs = input_specs(session)
    shapes = resolve_input_shapes(specs, 3).shapes
    arrays = random_inputs(specs, shapes)
    for onnx_type, array in zip(onnx_types, arrays):
        name = TensorProto.DataType.Name(onnx_type)
        assert array.shape == (3, 1), name
        expected = NUMPY_TYPES.get(name) or helper.tensor_dtype_to_np_dtype(onnx_type)
        assert array.dtype == expected, name
    # ORT takes every one of them and hands back the same type and shape.
    outputs = session_runner(session, specs, arrays)()
    assert [value.data_type() for value in outputs] == [spec.type for spec in specs]
    assert all(value.shape() == [3, 1] for value in outputs)


def test_random_inputs_with_strings_run_as_arrays():
    session = identity_session([TensorProto.STRING, TensorProto.FLOAT])
    specs = input_specs(session)
    arrays = random_inputs(specs, resolve_input_shapes(specs, 2).shapes)
    strings, _ = session_runner(session, specs, arrays)()
    assert strings.shape == (2, 1) and isinstance(strings[0, 0], str)


def test_random_integers_are_valid_indices_and_data_is_seeded():
    specs = [spec("ids", [64], "tensor(int64)"), spec("x", [64])]
    shapes = {"ids": (64,), "x": (64,)}
    ids, floats = random_inputs(specs, shapes)
    assert set(np.unique(ids)) <= {0, 1}
    assert np.array_equal(floats, random_inputs(specs, shapes)[1])
    assert not np.array_equal(floats, random_inputs(specs, shapes, seed=1)[1])


@pytest.mark.parametrize("type_", ["seq(tensor(float))", "tensor(complex64)", "tensor(int4)"])
def test_inputs_random_data_cannot_be_made_for(type_):
    with pytest.raises(InputError, match="random data can be made for tensors of"):
        random_inputs([spec("x", [1], type_)], {"x": (1,)})


def test_split_cores():
    assert split_cores(2, 1) == [2]
    assert split_cores(8, 3) == [3, 3, 2]
    assert split_cores(2, 3) == [1, 1, 1]


def test_results_statistics():
    results = BenchmarkResults(batch_size=2, seconds=0.5, latencies_ms=(1.0, 2.0, 3.0, 10.0))
    assert results.iterations == 4
    assert results.items_per_second == 16.0
    assert (results.latency_mean_ms, results.latency_median_ms) == (4.0, 2.5)
    assert results.latency_std_ms == pytest.approx(np.std([1, 2, 3, 10]))
    assert results.latency_p90_ms == pytest.approx(np.percentile([1, 2, 3, 10], 90))
    assert results.latency_p99_ms == pytest.approx(np.percentile([1, 2, 3, 10], 99))
    summary = results.summary()
    assert summary["throughput_items_per_sec"] == 16.0
    assert summary["latency_ms_per_batch"]["median"] == 2.5
    assert (summary["iterations"], summary["seconds"]) == (4, 0.5)


def test_measure_runs_every_stream_concurrently_and_counts_all_runs():
    runs, lock = {}, threading.Lock()
    both_running = threading.Barrier(2, timeout=5)

    def stream(name):
        def run():
            with lock:
                first = name not in runs
                runs[name] = runs.get(name, 0) + 1
            if first:
                both_running.wait()  # would time out if the streams ran one after the other
            time.sleep(0.002)

        return run

    results = measure([stream("a"), stream("b")], 3, seconds=0.1, warmup_seconds=0.02)
    assert set(runs) == {"a", "b"}
    assert 0 < results.iterations < sum(runs.values())  # warmup runs are not counted
    assert results.batch_size == 3


def test_measure_reports_progress_and_runs_at_least_once():
    calls = []
    results = measure(
        [lambda: time.sleep(0.05)],
        1,
        seconds=0.01,
        warmup_seconds=0.0,
        progress=lambda *call: calls.append(call),
        progress_interval=0.01,
    )
    assert results.iterations == 1
    assert calls and all(phase == "measure" and total == 0.01 for phase, _, total, _ in calls)


def test_a_failing_stream_stops_the_measurement():
    def fail():
        raise RuntimeError("the model broke")

    with pytest.raises(RuntimeError, match="the model broke"):
        measure([fail, lambda: time.sleep(0.001)], 1, seconds=5.0, warmup_seconds=0.0)
