import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import ortsparse
from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.one_image_at_a_time import NotBatched, one_image_at_a_time
from tests.rewriter_testing import FORCE_REWRITE, conv_weight, make_model, op_types, sparse_weight

C, N, SIZE, CLASSES = 4, 8, 6, 5


def classifier(batch="batch", opset=None) -> onnx.ModelProto:
    """X [batch, C, SIZE, SIZE] -> Conv -> Relu -> Flatten -> MatMul -> Y [batch, CLASSES]."""
    nodes = [
        helper.make_node("Conv", ["X", "W"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("Flatten", ["relu"], ["flat"]),
        helper.make_node("MatMul", ["flat", "F"], ["Y"], name="fc"),
    ]
    constants = {
        "W": conv_weight(N, C, (3, 3), sparsity=0.7),
        "F": sparse_weight(N * SIZE * SIZE, CLASSES, sparsity=0.7),
    }
    return make_model(
        nodes, {"X": [batch, C, SIZE, SIZE]}, {"Y": [batch, CLASSES]}, constants, opset
    )


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.register_custom_ops_library(ortsparse.library_path())
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"X": x})[0]


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float rounding: ORT's products of one row and of several sum in other orders."""
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def images(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, C, SIZE, SIZE), dtype=np.float32)


@pytest.mark.parametrize("opset", [None, 12])  # Unsqueeze's axes: an input, then an attribute
def test_the_scan_computes_what_the_batch_does(opset):
    model = classifier(opset=opset)
    scanned = one_image_at_a_time(model)
    onnx.checker.check_model(scanned, full_check=True)
    assert op_types(scanned) == ["Scan"]
    (scan,) = scanned.graph.node
    body = scan.attribute[0].g
    assert not scanned.graph.initializer
    assert [i.name for i in body.initializer] == [i.name for i in model.graph.initializer]
    for batch in (1, 3):
        assert_same(run(scanned, images(batch)), run(model, images(batch)))


def test_ortsparse_ops_run_inside_the_scan():
    model = classifier()
    rewritten = rewrite_model(model, min_sparsity=FORCE_REWRITE).model
    assert "SparseConv" in op_types(rewritten)
    scanned = one_image_at_a_time(rewritten)
    assert_same(run(scanned, images(4)), run(model, images(4)))


def test_names_the_body_would_take_are_left_to_the_graph():
    model = classifier()
    for node in model.graph.node:  # a value already named as the body's own would be
        node.output[:] = ["X_one_image" if name == "conv" else name for name in node.output]
        node.input[:] = ["X_one_image" if name == "conv" else name for name in node.input]
    scanned = one_image_at_a_time(model)
    assert_same(run(scanned, images(2)), run(model, images(2)))


def with_initializer_as_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its weight W listed as a graph input too, as IR 3 models list them all."""
    (weight,) = [tensor for tensor in model.graph.initializer if tensor.name == "W"]
    model.graph.input.append(helper.make_tensor_value_info("W", weight.data_type, weight.dims))
    return model


def two_inputs(first_dim, second_dim, output_dim="batch") -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["A", "B"], ["Y"])]
    return make_model(nodes, {"A": [first_dim, 3], "B": [second_dim, 3]}, {"Y": [output_dim, 3]})


@pytest.mark.parametrize(
    "model, problem",
    [
        (two_inputs("batch", "other"), r"do not share one declared leading \(batch\) dimension"),
        (two_inputs("batch", None), r"do not share one declared leading \(batch\) dimension"),
        (two_inputs("batch", "batch", 1), "output 'Y' does not lead with the inputs' batch axis"),
        (classifier(opset=8), "opset 8 has no Scan without a batch axis of its own"),
        (one_image_at_a_time(classifier()), r"a node holds a subgraph \(If, Loop, Scan\)"),
        (make_model([helper.make_node("Relu", ["A"], ["Y"])], {"A": []}, {"Y": []}), "scalar"),
        (make_model([helper.make_node("Relu", ["A"], ["Y"])], {"A": ["b"]}, {"Y": None}), "shape"),
        (with_initializer_as_input(classifier()), "initializers are graph inputs too"),
    ],
)
def test_a_model_without_one_batch_axis_is_refused(model, problem):
    with pytest.raises(NotBatched, match=problem):
        one_image_at_a_time(model)


def test_an_output_whose_batch_axis_has_another_name_scans_too():
    scanned = one_image_at_a_time(two_inputs("batch", "batch", "N"))
    a, b = np.ones((3, 3), np.float32), np.full((3, 3), 2.0, np.float32)
    session = ort.InferenceSession(scanned.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"A": a, "B": b})[0], a + b)


def test_inputs_of_one_fixed_batch_scan_too():
    model = two_inputs(2, 2, 2)
    scanned = one_image_at_a_time(model)
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    session = ort.InferenceSession(scanned.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"A": a, "B": b})[0], a + b)
