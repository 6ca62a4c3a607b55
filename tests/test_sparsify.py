"""ortsparse.sparsify and `ortsparse sparsify`: patterns, reconstruction, whole models, errors."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.cli import main
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import rewrite_model
from ortsparse.sparsify import CalibrationError, CalibrationInputs, SparsifyError, sparsify_model
from ortsparse.sparsify.layers import find_layers, input_rows
from ortsparse.sparsify.patterns import follows_pattern, magnitude_prune, parse_pattern
from ortsparse.sparsify.recipe import Recipe, RecipeError, load_recipe
from ortsparse.sparsify.reconstruction import (
    DAMPING,
    DAMPING_CANDIDATES,
    choose_damping,
    output_error,
    reconstruct,
)

PATTERNS = ["unstructured", "4x1", "1x4", "2:4", "2x1", "4x16"]


def correlated_inputs(rng, rows, k):
    return rng.standard_normal((rows, k)) @ (np.eye(k) + 0.3 * rng.standard_normal((k, k)))


@pytest.mark.parametrize("name", PATTERNS)
@pytest.mark.parametrize("shape", [(48, 64), (13, 30)])  # the second has short edge groups
def test_magnitude_pruning_keeps_or_drops_whole_groups(name, shape):
    pattern = parse_pattern(name)
    matrix = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    pruned = magnitude_prune(matrix, 0.75, pattern)
    assert follows_pattern(pruned, pattern)
    zeros = np.count_nonzero(pruned == 0) / pruned.size
    expected = 0.5 if name == "2:4" else 0.75
    assert zeros == pytest.approx(expected, abs=0.08 if shape == (13, 30) else 1e-9)
    kept = pruned != 0
    assert np.array_equal(pruned[kept], matrix[kept])  # magnitude pruning only zeroes


def test_a_broken_group_does_not_follow_its_pattern():
    matrix = np.ones((8, 8), dtype=np.float32)
    matrix[0, 0] = 0  # one weight of a 4x1 block and of a 1x4 quad
    assert not follows_pattern(matrix, parse_pattern("4x1"))
    assert not follows_pattern(matrix, parse_pattern("1x4"))
    assert follows_pattern(matrix, parse_pattern("unstructured"))
    assert not follows_pattern(matrix, parse_pattern("2:4"))


def test_each_pattern_names_the_kernel_format_that_stores_it():
    formats = {name: parse_pattern(name).kernel_format for name in ["1x1", "2x1", "4x16", "8x1"]}
    assert formats == {"1x1": "csr", "2x1": "csr", "4x16": "block4", "8x1": "block4"}
    assert parse_pattern("1x4").kernel_format.startswith("quad4")
    assert parse_pattern("1x1") is parse_pattern("unstructured")


@pytest.mark.parametrize("text", ["3x3", "4:2", "0:4", "2:4:8", "", "32x1"])
def test_unknown_patterns_are_refused(text):
    with pytest.raises(ValueError, match="unknown sparsity pattern"):
        parse_pattern(text)


def test_the_damping_is_chosen_by_the_error_on_held_out_inputs():
    """Fitted to fewer samples than features, the Hessian's correlations do not generalize: a
    larger damping than the default reconstructs the layer better on other inputs, and the
    choice is the candidate with the least error on them."""
    rng = np.random.default_rng(2)
    inputs = correlated_inputs(rng, 3150, 192)
    fit, held_out = inputs[:150].T @ inputs[:150], inputs[150:].T @ inputs[150:]
    matrix = rng.standard_normal((32, 192)).astype(np.float32)
    pattern = parse_pattern("unstructured")
    errors = {
        damping: output_error(matrix, reconstruct(matrix, fit, 0.9, pattern, damping), held_out)
        for damping in DAMPING_CANDIDATES
    }
    chosen = choose_damping(matrix, fit, held_out, 0.9, pattern)
    assert chosen == min(errors, key=errors.get)
    assert errors[chosen] < 0.95 * errors[DAMPING]


@pytest.mark.parametrize("name", PATTERNS)
def test_reconstruction_lowers_the_layer_error_below_magnitude_pruning(name):
    rng = np.random.default_rng(1)
    inputs = correlated_inputs(rng, 3000, 192)
    hessian = inputs.T @ inputs
    matrix = rng.standard_normal((32, 192)).astype(np.float32)
    pattern = parse_pattern(name)
    magnitude = magnitude_prune(matrix, 0.8, pattern)
    reconstructed = reconstruct(matrix, hessian, 0.8, pattern)
    assert follows_pattern(reconstructed, pattern)
    # Each block of 128 input features rounds its own count of groups to drop.
    zeros = np.count_nonzero(reconstructed == 0)
    assert zeros == pytest.approx(
        np.count_nonzero(magnitude == 0), abs=2 * pattern.rows * pattern.columns
    )
    # The error on the inputs themselves, not through the Hessian: the two must agree.
    error = np.sum(np.square(inputs @ (reconstructed - matrix).T.astype(np.float64)))
    assert error == pytest.approx(output_error(matrix, reconstructed, hessian), rel=1e-6)
    assert output_error(matrix, reconstructed, hessian) < 0.9 * output_error(
        matrix, magnitude, hessian
    )


def conv_model(rng, channels: int = 8) -> onnx.ModelProto:
    """A small CNN: 3x3 conv, 3x3 stride-2 dilated-free conv, 1x1 conv, pooled Gemm head."""

    def weight(name, shape):
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(np.float32),
            name,
        )

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node(
            "Conv", ["r1", "w2"], ["c2"], name="down", pads=[1, 1, 1, 1], strides=[2, 2]
        ),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"], name="pointwise"),
        helper.make_node("GlobalAveragePool", ["c3"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w4"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", channels, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [
            weight("w1", (32, channels, 3, 3)),
            weight("w2", (64, 32, 3, 3)),
            weight("w3", (64, 64, 1, 1)),
            weight("w4", (10, 64)),
        ],
    )
    return newest_model_versions().make_model(graph)


def test_conv_input_rows_times_the_matrix_view_are_the_conv_outputs(tmp_path):
    rng = np.random.default_rng(2)
    model = conv_model(rng)
    layers, _ = find_layers(model, min_weights=1)
    down = next(layer for layer in layers if layer.node_name == "down")
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    single = newest_model_versions().make_model(
        helper.make_graph(
            [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
            "down",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32, 12, 12])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(down.weight(), "w")],
        )
    )
    (expected,) = ort.InferenceSession(single.SerializeToString()).run(None, {"x": x})
    rows = list(input_rows(down, x))
    for image, image_rows in enumerate(rows):
        outputs = (image_rows @ down.matrix().T.astype(np.float64)).T.reshape(64, 6, 6)
        np.testing.assert_allclose(outputs, expected[image], rtol=1e-4, atol=1e-4)
    down.store(down.matrix())  # the view goes back unchanged
    np.testing.assert_array_equal(down.weight(), numpy_helper.to_array(model.graph.initializer[1]))


@pytest.fixture
def cnn(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "cnn.onnx"
    onnx.save(conv_model(rng), str(path))
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, x=rng.standard_normal((12, 8, 12, 12)).astype(np.float32))
    return path, calibration


@pytest.mark.parametrize("pattern", PATTERNS)
def test_sparsify_command_writes_a_checked_model_that_the_rewriter_takes(
    cnn, tmp_path, capsys, pattern
):
    path, calibration = cnn
    output = tmp_path / "sparse.onnx"
    arguments = [str(path), str(output), "--sparsity", "0.8", "--pattern", pattern]
    assert (
        main(["sparsify", *arguments, "--calibration", str(calibration), "--min-weights", "1"]) == 0
    )
    captured = capsys.readouterr()
    assert "stem: the model's first or last layer" in captured.err
    model = onnx.load(str(output))
    onnx.checker.check_model(model)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert np.count_nonzero(weights["w1"] == 0) == 0  # the stem stays dense
    layers, _ = find_layers(model, min_weights=1)
    for layer in layers[1:-1]:
        assert follows_pattern(layer.matrix(), parse_pattern(pattern))
        zeros = np.count_nonzero(layer.matrix() == 0) / layer.matrix().size
        assert zeros == pytest.approx(0.5 if pattern == "2:4" else 0.8, abs=0.01)
    rewritten = rewrite_model(model, min_sparsity=0.5)
    assert rewritten.rewritten_count >= 2
    assert "pointwise" in captured.out and "down" in captured.out


def test_reconstruction_beats_magnitude_on_the_model(cnn, tmp_path):
    path, calibration = cnn
    errors = {}
    for method in ("obs", "magnitude"):
        model = onnx.load(str(path))
        inputs = CalibrationInputs(calibration, path, max_samples=12)
        recipe = Recipe(sparsity=0.9, method=method)
        result = sparsify_model(model, recipe, calibration=inputs)
        errors[method] = {layer.name: layer.relative_error for layer in result.layers}
    for name, error in errors["obs"].items():
        assert error < errors["magnitude"][name]


@pytest.mark.parametrize("preparation", ["image_classification", "yolo"])
def test_a_folder_of_images_calibrates_an_image_model(tmp_path, capsys, preparation):
    from PIL import Image

    rng = np.random.default_rng(6)
    path = tmp_path / "rgb.onnx"
    onnx.save(conv_model(rng, channels=3), str(path))
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        pixels = rng.integers(0, 256, (20 + index, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
    (folder / "notes.txt").write_text("not an image")
    inputs = CalibrationInputs(folder, path, max_samples=2, image_preparation=preparation)
    batches = list(inputs)
    assert len(batches) == 1 and batches[0]["x"].shape == (2, 3, 12, 12)
    output = tmp_path / "sparse.onnx"
    arguments = ["--calibration", str(folder), "--images-as", preparation]
    assert main(["sparsify", str(path), str(output), *arguments]) == 0
    assert "calibration: 1 batch(es)" in capsys.readouterr().err
    with pytest.raises(CalibrationError, match="holds no images"):
        CalibrationInputs(tmp_path, path, max_samples=2)


def test_magnitude_needs_no_calibration(cnn, tmp_path):
    path, _ = cnn
    output = tmp_path / "sparse.onnx"
    arguments = ["--method", "magnitude", "--prune-ends", "--min-weights", "1"]
    assert main(["sparsify", str(path), str(output), *arguments]) == 0
    layers, _ = find_layers(onnx.load(str(output)), min_weights=1)
    assert all(np.count_nonzero(layer.matrix() == 0) > 0 for layer in layers)


def test_the_sparse_model_keeps_the_model_s_ir_version_and_opsets(tmp_path):
    # Older ones than the IR 8 and opset 17 of the suite's models, to tell keeping them from
    # writing fixed ones.
    model = conv_model(np.random.default_rng(3))
    model.ir_version, model.opset_import[0].version = 7, 13
    path, output = tmp_path / "cnn.onnx", tmp_path / "sparse.onnx"
    onnx.save(model, str(path))
    assert main(["sparsify", str(path), str(output), "--method", "magnitude"]) == 0
    sparse = onnx.load(str(output))
    assert sparse.ir_version == 7
    assert [(opset.domain, opset.version) for opset in sparse.opset_import] == [("", 13)]


def test_reconstruction_without_calibration_is_refused(cnn, tmp_path, capsys):
    path, _ = cnn
    assert main(["sparsify", str(path), str(tmp_path / "out.onnx")]) == 2
    assert "needs calibration inputs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((2, 8, 12, 12), np.float32)}, "no array for input"),
        ({"x": np.zeros((2, 3, 12, 12), np.float32)}, "calibration array has shape"),
        ({"x": np.zeros((2, 8, 12), np.float32)}, "has rank 4"),
        ({"x": np.zeros((2, 8, 12, 12), np.int64)}, "is tensor\\(float\\)"),
    ],
)
def test_calibration_that_does_not_fit_the_model_is_refused(cnn, tmp_path, capsys, arrays, message):
    path, _ = cnn
    calibration = tmp_path / "bad.npz"
    np.savez(calibration, **arrays)
    with pytest.raises(CalibrationError, match=message):
        CalibrationInputs(calibration, path, max_samples=4)
    assert (
        main(["sparsify", str(path), str(tmp_path / "o.onnx"), "--calibration", str(calibration)])
        == 2
    )
    assert "error:" in capsys.readouterr().err


def test_an_unwritable_output_is_reported(cnn, tmp_path, capsys):
    path, _ = cnn
    output = tmp_path / "missing" / "sparse.onnx"
    assert main(["sparsify", str(path), str(output), "--method", "magnitude"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_dims_written_as_minus_one_are_dynamic(tmp_path):
    rng = np.random.default_rng(8)
    model = conv_model(rng)
    for dim in model.graph.input[0].type.tensor_type.shape.dim:
        if dim.dim_param:
            dim.dim_value = -1  # as paddle2onnx writes a dynamic dim
    path = tmp_path / "minus_one.onnx"
    onnx.save(model, str(path))
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, x=rng.standard_normal((20, 8, 12, 12)).astype(np.float32))
    batches = [feed["x"].shape[0] for feed in CalibrationInputs(calibration, path, max_samples=20)]
    assert batches == [16, 4]


def test_not_a_model_and_no_layers_are_refused(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert main(["sparsify", str(garbage), str(tmp_path / "o.onnx"), "--method", "magnitude"]) == 2
    assert "not an ONNX model" in capsys.readouterr().err
    assert main(["sparsify", str(tmp_path / "absent.onnx"), str(tmp_path / "o.onnx")]) == 2
    assert "error: cannot read" in capsys.readouterr().err
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(SparsifyError, match="no layer to prune"):
        sparsify_model(newest_model_versions().make_model(graph), Recipe(method="magnitude"))


def test_every_layer_kind_s_matrix_view_goes_back_as_it_came():
    rng = np.random.default_rng(5)
    mlp = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="linear")],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 40])],
        [numpy_helper.from_array(rng.standard_normal((48, 40)).astype(np.float32), "w")],
    )
    for model in (newest_model_versions().make_model(mlp), conv_model(rng)):
        layers, _ = find_layers(model, min_weights=1)
        for layer in layers:
            weight = layer.weight()
            matrix = layer.matrix()
            assert matrix.size == weight.size
            layer.store(matrix)
            np.testing.assert_array_equal(layer.weight(), weight)
            layer.store(np.zeros_like(matrix))
            assert not layer.weight().any()


def test_non_float_and_grouped_weights_are_reported_and_left_alone():
    rng = np.random.default_rng(4)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w_half"], ["a"], name="half"),
            helper.make_node("Conv", ["img", "w_dw"], ["b"], name="depthwise", group=16),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 64]),
            helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 16, 8, 8]),
        ],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT16, [1, 64]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 16, 6, 6]),
        ],
        [
            numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float16), "w_half"),
            numpy_helper.from_array(rng.standard_normal((16, 1, 3, 3)).astype(np.float32), "w_dw"),
        ],
    )
    layers, skipped = find_layers(newest_model_versions().make_model(graph), min_weights=1)
    assert layers == []
    assert any("half: weight w_half is FLOAT16" in line for line in skipped)
    assert any("depthwise: grouped" in line for line in skipped)


def write(path, text):
    path.write_text(text)
    return path


def test_a_recipe_sets_each_layer_s_target_and_pattern(cnn, tmp_path, capsys):
    path, _ = cnn
    recipe = write(
        tmp_path / "recipe.yaml",
        """
sparsity: 0.5
pattern: 1x4
method: magnitude
prune_ends: true
dense: ["^head$"]
layers:
  - match: "^down$"
    sparsity: 0.9
    pattern: 4x1
  - match: "pointwise"
    dense: true
""",
    )
    output = tmp_path / "sparse.onnx"
    arguments = ["--recipe", str(recipe), "--min-weights", "1"]
    assert main(["sparsify", str(path), str(output), *arguments]) == 0
    captured = capsys.readouterr()
    assert "pointwise: left dense by the recipe" in captured.err
    assert "head: left dense by the recipe" in captured.err
    layers = {
        layer.node_name: layer.matrix() for layer in find_layers(onnx.load(str(output)), 1)[0]
    }
    assert np.count_nonzero(layers["stem"] == 0) / layers["stem"].size == pytest.approx(
        0.5, abs=0.01
    )
    assert follows_pattern(layers["stem"], parse_pattern("1x4"))
    assert np.count_nonzero(layers["down"] == 0) / layers["down"].size == pytest.approx(
        0.9, abs=0.01
    )
    assert follows_pattern(layers["down"], parse_pattern("4x1"))
    assert not (layers["pointwise"] == 0).any() and not (layers["head"] == 0).any()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sparsity: 0.8\nsparsty: 0.9\n", "line 2: unknown key 'sparsty'"),
        ("sparsity: 1.5\n", "line 1: sparsity must be a number in \\(0, 1\\)"),
        ("pattern: 3x3\n", "line 1: unknown sparsity pattern '3x3'"),
        ("method: prune\n", "line 1: method must be one of obs, magnitude"),
        ("layers:\n  - sparsity: 0.9\n", "line 2: a layer rule needs `match`"),
        ("layers:\n  - match: '('\n", "line 2: '\\(' is not a regular expression"),
        (
            "layers:\n  - match: a\n    dense: true\n    sparsity: 0.5\n",
            "line 2: a rule that leaves",
        ),
        ("dense: stem\n", "line 1: expected a list"),
        ("prune_ends: maybe\n", "line 1: expected true or false"),
        ("sparsity: [0.5\n", "not YAML"),
        ("distribution: random\n", "line 1: distribution must be one of uniform, sensitivity"),
    ],
)
def test_a_malformed_recipe_is_refused_with_its_line(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path / "recipe.yaml", text))


def test_recipe_and_its_options_do_not_mix(cnn, tmp_path, capsys):
    path, _ = cnn
    recipe = write(tmp_path / "recipe.yaml", "method: magnitude\n")
    arguments = ["--recipe", str(recipe), "--sparsity", "0.5"]
    assert main(["sparsify", str(path), str(tmp_path / "o.onnx"), *arguments]) == 2
    assert "with --recipe, give --sparsity in the recipe" in capsys.readouterr().err


def int8_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {
        tensor.name: numpy_helper.to_array(tensor)
        for tensor in model.graph.initializer
        if tensor.data_type == TensorProto.INT8 and len(tensor.dims) >= 2
    }


def test_quantize_after_pruning_keeps_the_zeros_and_the_rewriter_takes_it(cnn, tmp_path, capsys):
    path, calibration = cnn
    output = tmp_path / "int8.onnx"
    arguments = ["--calibration", str(calibration), "--pattern", "1x4", "--sparsity", "0.9"]
    assert main(["sparsify", str(path), str(output), *arguments, "--quantize", "int8"]) == 0
    assert "quantizing to INT8 (qdq)" in capsys.readouterr().err
    model = onnx.load(str(output))
    onnx.checker.check_model(model)
    assert {node.op_type for node in model.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    weights = int8_weights(model)
    # The 64 x 64 x 1 x 1 pointwise weight: 90% of its quads of 4 input channels are zero.
    (pointwise,) = [w for w in weights.values() if w.shape == (64, 64, 1, 1)]
    quads = pointwise.reshape(64, 16, 4)
    assert np.count_nonzero(~quads.any(axis=-1)) / (64 * 16) == pytest.approx(0.9, abs=0.01)
    rewritten = rewrite_model(model, min_sparsity=0.5)
    assert rewritten.rewritten_count >= 1


def test_a_recipe_s_quantization_section(cnn, tmp_path):
    path, calibration = cnn
    recipe = write(
        tmp_path / "recipe.yaml",
        "method: magnitude\nquantization:\n  format: qoperator\n  activation_type: s8\n",
    )
    output = tmp_path / "int8.onnx"
    arguments = ["--recipe", str(recipe), "--calibration", str(calibration)]
    assert main(["sparsify", str(path), str(output), *arguments]) == 0
    ops = {node.op_type for node in onnx.load(str(output)).graph.node}
    assert "QLinearConv" in ops
    with pytest.raises(RecipeError, match="line 3: quantization: format must be one of"):
        load_recipe(write(tmp_path / "bad.yaml", "method: obs\nquantization:\n  format: fp8\n"))


def test_quantization_without_calibration_is_refused(cnn, tmp_path, capsys):
    path, _ = cnn
    arguments = ["--method", "magnitude", "--quantize", "int8"]
    assert main(["sparsify", str(path), str(tmp_path / "o.onnx"), *arguments]) == 2
    assert "quantization calibrates the activations' ranges" in capsys.readouterr().err


def test_the_sensitivity_distribution_averages_the_target_and_spares_sensitive_layers():
    from ortsparse.sparsify.sensitivity import SensitivityCurve, distribute

    sparsities = (0.5, 0.7, 0.9)
    robust = SensitivityCurve("robust", 3000, sparsities, (0.01, 0.02, 0.05))
    sensitive = SensitivityCurve("sensitive", 1000, sparsities, (0.1, 0.4, 0.8))
    targets = distribute([robust, sensitive], 0.75)
    assert targets["robust"] > 0.75 > targets["sensitive"]
    average = (3000 * targets["robust"] + 1000 * targets["sensitive"]) / 4000
    assert average == pytest.approx(0.75, abs=1e-6)
    assert robust.sparsity_within(0.015) == pytest.approx(0.6)  # between the measured points


def test_analyze_prints_each_layer_s_curve_and_plots_it(cnn, tmp_path, capsys):
    path, calibration = cnn
    png = tmp_path / "curves.png"
    arguments = ["--analyze", "--calibration", str(calibration), "--plot", str(png)]
    assert main(["sparsify", str(path), *arguments]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "50%" in lines[0] and "95%" in lines[0] and "sensitivity target at 80%" in lines[0]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert set(rows) == {"down", "pointwise"}
    errors = [float(value) for value in rows["down"][:6]]
    assert errors == sorted(errors) and 0 <= errors[0] and errors[-1] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["out.onnx", "--analyze"], "give OUTPUT, the sparse model to write, or --analyze"),
        ([], "give OUTPUT, the sparse model to write, or --analyze"),
        (["out.onnx", "--plot", "c.png"], "--plot draws the curves of --analyze"),
        (["--analyze", "--method", "magnitude"], "--analyze measures errors on calibration"),
    ],
)
def test_analyze_misuse_is_refused(cnn, tmp_path, capsys, arguments, message):
    path, _ = cnn
    assert main(["sparsify", str(path), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_sparsify_by_sensitivity_reaches_the_target_on_average(cnn, tmp_path, capsys):
    path, calibration = cnn
    output = tmp_path / "sparse.onnx"
    arguments = ["--calibration", str(calibration), "--distribution", "sensitivity"]
    assert main(["sparsify", str(path), str(output), *arguments, "--sparsity", "0.7"]) == 0
    layers = {
        layer.node_name: layer.matrix() for layer in find_layers(onnx.load(str(output)), 1)[0]
    }
    pruned = [layers["down"], layers["pointwise"]]
    zeros = sum(np.count_nonzero(m == 0) for m in pruned) / sum(m.size for m in pruned)
    assert zeros == pytest.approx(0.7, abs=0.02)


def test_analyze_with_labels_reports_the_model_s_accuracy(cnn, tmp_path, capsys):
    path, _ = cnn
    rng = np.random.default_rng(9)
    x = rng.standard_normal((20, 8, 12, 12)).astype(np.float32)
    (scores,) = ort.InferenceSession(str(path)).run(None, {"x": x})
    calibration = tmp_path / "labelled.npz"
    np.savez(calibration, x=x, labels=np.argmax(scores, axis=1))  # the dense model is right
    assert main(["sparsify", str(path), "--analyze", "--calibration", str(calibration)]) == 0
    out = capsys.readouterr().out
    assert "top-1 accuracy on the labelled calibration samples, dense: 100.0%" in out
    rows = {
        line.split()[0]: line.split()[1:] for line in out.split("dense: 100.0%")[1].splitlines()[2:]
    }
    assert set(rows) == {"down", "pointwise"}
    assert all(cell.endswith("%") for cell in rows["down"])


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(20, np.float32), "labels must be one class index"),
        (np.zeros((20, 2), np.int64), "labels must be one class index"),
        (np.zeros(5, np.int64), "holds 5 labels for 20 samples"),
    ],
)
def test_malformed_labels_are_refused(cnn, tmp_path, labels, message):
    path, _ = cnn
    calibration = tmp_path / "labelled.npz"
    np.savez(calibration, x=np.zeros((20, 8, 12, 12), np.float32), labels=labels)
    with pytest.raises(CalibrationError, match=message):
        CalibrationInputs(calibration, path, max_samples=20)
