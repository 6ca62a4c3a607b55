"""tools/quantize_model.py: ONNX Runtime static INT8 quantization on random calibration data,
and its dynamic quantization."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests import int8_reference
from tools.quantize_model import BadInput, main, quantize_model

REPO_ROOT = Path(__file__).resolve().parents[1]
# Weights are drawn once per model from this seed; calibration uses quantize_model's own seed, and
# the comparison input yet another, so the model is never judged on its calibration data.
WEIGHT_SEED = 7
EVAL_SEED = 1234


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializers)
    model = newest_model_versions().make_model(graph)
    onnx.checker.check_model(model)
    return model


def _matmul_model() -> onnx.ModelProto:
    """x [batch, 16] @ W [16, 8] -> Relu."""
    weight = np.random.default_rng(WEIGHT_SEED).standard_normal((16, 8), dtype=np.float32)
    return _model(
        [helper.make_node("MatMul", ["x", "W"], ["mm"]), helper.make_node("Relu", ["mm"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(weight, "W")],
    )


def _conv_model() -> onnx.ModelProto:
    """x [1, 4, 8, 8] -> Conv 3x3 (6 filters, bias, same padding)."""
    rng = np.random.default_rng(WEIGHT_SEED)
    weight = rng.standard_normal((6, 4, 3, 3), dtype=np.float32) * 0.3
    bias = rng.standard_normal(6, dtype=np.float32)
    return _model(
        [helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 8, 8])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )


def _sequence_model(input_type=TensorProto.FLOAT) -> onnx.ModelProto:
    """x [batch, seq, 16] @ W [16, 8]: a symbolic dim that is not the first."""
    weight = np.random.default_rng(WEIGHT_SEED).standard_normal((16, 8), dtype=np.float32)
    return _model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        [helper.make_tensor_value_info("x", input_type, ["batch", "seq", 16])],
        [helper.make_tensor_value_info("y", input_type, ["batch", "seq", 8])],
        [numpy_helper.from_array(weight, "W")],
    )


def _token_model() -> onnx.ModelProto:
    """int64 token ids [batch, seq] -> Gather from a [10, 16] table -> MatMul [16, 8]."""
    rng = np.random.default_rng(WEIGHT_SEED)
    table = rng.standard_normal((10, 16), dtype=np.float32)
    weight = rng.standard_normal((16, 8), dtype=np.float32)
    return _model(
        [
            helper.make_node("Gather", ["table", "ids"], ["embedded"]),
            helper.make_node("MatMul", ["embedded", "W"], ["y"]),
        ],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 8])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "W")],
    )


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _run_quantized(path: Path, x: np.ndarray) -> np.ndarray:
    """The quantized model's output with exact integer products: on CPUs without VNNI, ORT's
    saturate (tests/int8_reference.py), which would judge ORT rather than the quantization."""
    model = onnx.load(str(path))
    return int8_reference.expected_outputs(model, {model.graph.input[0].name: x})[0]


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}


MODELS = {
    "matmul": (_matmul_model, (3, 16), "QLinearMatMul", (16, 8), 1),
    "conv": (_conv_model, (1, 4, 8, 8), "QLinearConv", (6, 4, 3, 3), 0),
}


@pytest.mark.parametrize("activation_type", ["u8", "s8"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_tensor", "per_channel"])
@pytest.mark.parametrize("quant_format", ["qdq", "qoperator"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_quantized_model_runs_close_to_fp32(
    tmp_path, kind, quant_format, per_channel, activation_type
):
    build, input_shape, qlinear_op, weight_shape, channel_axis = MODELS[kind]
    fp32_path = _save(build(), tmp_path / "fp32.onnx")
    int8_path = tmp_path / "int8.onnx"
    quantize_model(
        fp32_path,
        int8_path,
        quant_format=quant_format,
        per_channel=per_channel,
        activation_type=activation_type,
        # MinMax calibration: enough samples that the evaluation input rarely leaves its range.
        samples=64,
    )

    quantized = onnx.load(str(int8_path))
    op_types = {node.op_type for node in quantized.graph.node}
    initializers = _initializers(quantized)
    int8_weights = [
        name
        for name, value in initializers.items()
        if value.dtype == np.int8 and value.shape == weight_shape
    ]
    assert len(int8_weights) == 1, "the weight must be stored as int8"
    (weight_name,) = int8_weights
    assert "W" not in initializers, "the float weight must be gone"

    if quant_format == "qdq":
        assert {"QuantizeLinear", "DequantizeLinear"} <= op_types
        (weight_dq,) = [n for n in quantized.graph.node if n.input[0] == weight_name]
        assert weight_dq.op_type == "DequantizeLinear"
        weight_scale = initializers[weight_dq.input[1]]
        # The int8 weight dequantizes to the FP32 one, to within half a quantization step.
        channels = [1] * len(weight_shape)
        channels[channel_axis] = -1
        scale = weight_scale.reshape(channels)
        zero_point = initializers[weight_dq.input[2]].reshape(channels)
        dequantized = (initializers[weight_name].astype(np.float32) - zero_point) * scale
        original = _initializers(onnx.load(str(fp32_path)))["W"]
        assert np.all(np.abs(dequantized - original) <= scale / 2 + 1e-6)
    else:
        assert qlinear_op in op_types
        assert not op_types & {"MatMul", "Conv"}, "no float MatMul/Conv may remain"
        (qlinear,) = [n for n in quantized.graph.node if n.op_type == qlinear_op]
        assert qlinear.input[3] == weight_name
        weight_scale = initializers[qlinear.input[4]]
    assert weight_scale.shape == ((weight_shape[channel_axis],) if per_channel else ())

    # The graph input is quantized with the requested activation type.
    (input_quantize,) = [n for n in quantized.graph.node if n.input[0] == "x"]
    assert input_quantize.op_type == "QuantizeLinear"
    expected_type = np.uint8 if activation_type == "u8" else np.int8
    assert initializers[input_quantize.input[2]].dtype == expected_type

    x = np.random.default_rng(EVAL_SEED).standard_normal(input_shape, dtype=np.float32)
    expected = _run(fp32_path, x)
    actual = _run_quantized(int8_path, x)
    assert actual.shape == expected.shape
    assert not np.array_equal(actual, expected), "INT8 arithmetic cannot reproduce FP32 exactly"
    assert np.abs(actual - expected).max() <= 0.05 * np.abs(expected).max()


def test_same_seed_same_model_other_seed_other_scales(tmp_path):
    fp32_path = _save(_matmul_model(), tmp_path / "fp32.onnx")
    paths = [tmp_path / f"{name}.onnx" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (0, 0, 1)):
        quantize_model(fp32_path, path, seed=seed)
    a, b, c = (path.read_bytes() for path in paths)
    assert a == b
    assert a != c


def test_symbolic_second_dim_needs_dim_option(tmp_path, capsys):
    fp32_path = _save(_sequence_model(), tmp_path / "fp32.onnx")
    out = tmp_path / "int8.onnx"

    assert main([str(fp32_path), str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "'seq'" in error and "--dim seq=" in error and "\n" not in error
    assert not out.exists()

    assert main([str(fp32_path), str(out), "--dim", "seq=5", "--dim", "nope=3"]) == 2
    assert "nope" in capsys.readouterr().err

    options = ["--dim", "seq=5", "--batch", "2", "--calibration-samples", "64"]
    assert main([str(fp32_path), str(out), *options]) == 0
    assert "[quantize] calibrating on 64 random samples (x [2, 5, 16])" in capsys.readouterr().err
    # Calibration sizes are not baked into the model: it still runs at other sizes.
    x = np.random.default_rng(EVAL_SEED).standard_normal((3, 7, 16), dtype=np.float32)
    expected = _run(fp32_path, x)
    assert np.abs(_run_quantized(out, x) - expected).max() <= 0.05 * np.abs(expected).max()


def test_integer_inputs_are_calibrated_with_zeros(tmp_path):
    fp32_path = _save(_token_model(), tmp_path / "fp32.onnx")
    out = tmp_path / "int8.onnx"
    quantize_model(fp32_path, out, dims={"seq": 4})
    weights = _initializers(onnx.load(str(out))).values()
    assert any(value.dtype == np.int8 and value.shape == (16, 8) for value in weights)
    ids = np.zeros((2, 4), dtype=np.int64)
    expected = _run(fp32_path, ids)
    assert np.abs(_run_quantized(out, ids) - expected).max() <= 0.05 * np.abs(expected).max()


def test_dynamic_format_quantizes_matmul_to_matmul_integer_without_sizes(tmp_path):
    # A symbolic non-batch dim needs no --dim: nothing is calibrated.
    fp32_path = _save(_sequence_model(), tmp_path / "fp32.onnx")
    out = tmp_path / "dyn.onnx"
    assert main([str(fp32_path), str(out), "--format", "dynamic", "--per-channel"]) == 0
    op_types = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= op_types and "MatMul" not in op_types
    x = np.random.default_rng(EVAL_SEED).standard_normal((3, 7, 16), dtype=np.float32)
    expected = _run(fp32_path, x)
    assert np.abs(_run_quantized(out, x) - expected).max() <= 0.05 * np.abs(expected).max()


def test_dynamic_format_refuses_s8_activations(tmp_path):
    fp32_path = _save(_matmul_model(), tmp_path / "fp32.onnx")
    with pytest.raises(BadInput, match="activations to u8"):
        quantize_model(
            fp32_path, tmp_path / "dyn.onnx", quant_format="dynamic", activation_type="s8"
        )


def test_float_products_leave_the_matmul_output_unquantized(tmp_path):
    fp32_path = _save(_matmul_model(), tmp_path / "fp32.onnx")
    out = tmp_path / "int8.onnx"
    assert main([str(fp32_path), str(out), "--float-products"]) == 0
    graph = onnx.load(str(out)).graph
    (matmul,) = [node for node in graph.node if node.op_type == "MatMul"]
    producers = {node.output[0]: node.op_type for node in graph.node}
    assert [producers.get(name) for name in matmul.input] == ["DequantizeLinear"] * 2
    consumers = [node.op_type for node in graph.node if matmul.output[0] in node.input]
    assert consumers == ["Relu"]


def test_float_products_are_refused_outside_qdq(tmp_path):
    fp32_path = _save(_matmul_model(), tmp_path / "fp32.onnx")
    with pytest.raises(BadInput, match="form of the qdq format only"):
        quantize_model(
            fp32_path, tmp_path / "dyn.onnx", quant_format="dynamic", float_products=True
        )


def test_unsupported_input_type_is_rejected(tmp_path):
    fp32_path = _save(_sequence_model(TensorProto.DOUBLE), tmp_path / "fp64.onnx")
    with pytest.raises(BadInput, match="'x' has type DOUBLE"):
        quantize_model(fp32_path, tmp_path / "int8.onnx", dims={"seq": 2})


def test_bad_input_files_exit_2(tmp_path, capsys):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("this is not a model\n")
    for path, message in [
        (tmp_path / "missing.onnx", "no such file"),
        (not_onnx, "not an ONNX model"),
    ]:
        assert main([str(path), str(tmp_path / "out.onnx")]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()


def test_runs_as_a_script(tmp_path):
    fp32_path = _save(_matmul_model(), tmp_path / "fp32.onnx")
    out = tmp_path / "sub" / "int8.onnx"
    command = [
        sys.executable,
        "tools/quantize_model.py",
        str(fp32_path),
        str(out),
        "--format",
        "qoperator",
        "--calibration-samples",
        "2",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert f"[quantize] wrote {out}" in result.stderr
    assert "QLinearMatMul" in {node.op_type for node in onnx.load(str(out)).graph.node}
