import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    attributes,
    conv_weight,
    make_model,
    op_types,
    rewrite,
    sparse_nodes,
)

C, H, W = 6, 7, 8
LABEL = "sibling SparseConv reading the same X"


def siblings(specs, reader_between=True):
    """One 1x1 or 3x3 conv of X per (name, out channels, kernel, activation, bias) in ``specs``,
    in that order; with ``reader_between``, a Relu of the first conv's output comes before the
    second conv, as YOLOv5's bottlenecks come between a C3's cv1 and cv2."""
    nodes, constants, outputs = [], {}, {}
    for index, (name, n, kernel, activation, bias) in enumerate(specs):
        pads = [kernel // 2] * 4
        inputs = ["X", f"W_{name}"] + ([f"B_{name}"] if bias else [])
        nodes.append(
            helper.make_node(
                "Conv", inputs, [f"c_{name}"], name=name, kernel_shape=[kernel] * 2, pads=pads
            )
        )
        constants[f"W_{name}"] = conv_weight(n, C, (kernel, kernel), sparsity=0.7, seed=index)
        if bias:
            constants[f"B_{name}"] = np.linspace(-1, 1, n).astype(np.float32)
        if activation == "Relu":
            nodes.append(helper.make_node("Relu", [f"c_{name}"], [f"Y_{name}"]))
        else:
            nodes.append(helper.make_node("Identity", [f"c_{name}"], [f"Y_{name}"]))
        if reader_between and index == 0:
            nodes.append(helper.make_node("Relu", [f"Y_{name}"], ["between"]))
            outputs["between"] = ["b", n, H, W]
        outputs[f"Y_{name}"] = ["b", n, H, W]
    return make_model(nodes, {"X": ["b", C, H, W]}, outputs, constants)


def test_the_output_affine_of_one_sibling_is_merged_with_ones_for_the_other():
    model = siblings([("cv1", 5, 1, "Relu", True), ("cv2", 3, 1, "Relu", True)])
    relu = next(node for node in model.graph.node if list(node.output) == ["Y_cv1"])
    relu.output[0] = "relu_cv1"
    index = list(model.graph.node).index(relu)
    model.graph.node.insert(index + 1, helper.make_node("Mul", ["relu_cv1", "s"], ["Y_cv1"]))
    scale = np.linspace(0.5, 2, 5).astype(np.float32)
    model.graph.initializer.append(numpy_helper.from_array(scale.reshape(5, 1, 1), "s"))
    rewritten = rewrite(model)
    (merged,) = sparse_nodes(rewritten, SparseConv)
    merged_scale = numpy_helper.to_array(attributes(merged)["output_scale"])
    np.testing.assert_array_equal(merged_scale, [*scale, 1, 1, 1])
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize("biases", [(True, True), (True, False), (False, False)])
def test_two_convs_of_one_input_merge(biases):
    model = siblings([("cv1", 5, 1, "Relu", biases[0]), ("cv2", 3, 1, "Relu", biases[1])])
    rewritten = rewrite(model)
    (merged,) = sparse_nodes(rewritten, SparseConv)
    assert list(merged.output) == ["Y_cv1", "Y_cv2"]
    assert attributes(merged)["output_split"] == 5 and attributes(merged)["N"] == 8
    assert (len(merged.input) > 4 and merged.input[4] != "") == any(biases)
    # Before the Relu that reads its first output.
    assert op_types(rewritten)[0] == "SparseConv"
    decisions = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions
    assert [d.fused[-1] for d in decisions] == [
        f"{LABEL} (cv2_SparseConv)",
        f"{LABEL} (cv1_SparseConv)",
    ]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_three_siblings_make_one_pair():
    model = siblings([(f"cv{i}", 4 + i, 3, "Relu", True) for i in range(3)])
    rewritten = rewrite(model)
    convs = [SparseConv.from_node(node) for node in sparse_nodes(rewritten, SparseConv)]
    assert sorted(op.output_split for op in convs) == [0, 4]
    assert_same_outputs(model, rewritten, {"b": 2})


@pytest.mark.parametrize(
    "second",
    [("cv2", 3, 3, "Relu", True), ("cv2", 3, 1, "Identity", True)],
    ids=["another-kernel", "another-activation"],
)
def test_unlike_convs_stay_apart(second):
    model = siblings([("cv1", 5, 1, "Relu", True), second])
    rewritten = rewrite(model)
    assert len(sparse_nodes(rewritten, SparseConv)) == 2
    assert_same_outputs(model, rewritten, {"b": 2})


def test_a_conv_with_a_residual_stays_apart():
    nodes = [
        helper.make_node("Conv", ["X", "W1"], ["Y1"], name="cv1"),
        helper.make_node("Conv", ["X", "W2"], ["c2"], name="cv2"),
        helper.make_node("Add", ["c2", "R"], ["Y2"]),
    ]
    constants = {"W1": conv_weight(4, C, (1, 1), 0.7), "W2": conv_weight(4, C, (1, 1), 0.7, 1)}
    inputs = {"X": ["b", C, H, W], "R": ["b", 4, H, W]}
    model = make_model(nodes, inputs, {"Y1": ["b", 4, H, W], "Y2": ["b", 4, H, W]}, constants)
    rewritten = rewrite(model)
    assert len(sparse_nodes(rewritten, SparseConv)) == 2
    assert_same_outputs(model, rewritten, {"b": 2})
