import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CONV_HW,
    CONV_N,
    assert_same_outputs,
    conv_then,
    op_types,
    rewrite,
)

REDUCTIONS = ["ReduceMax", "Sub", "Exp", "ReduceSum", "Div"]


def softmax_of_a_conv(axis, opset=None, shape=None):
    """conv_then(Softmax(axis)), its output reshaped to ``shape`` first where given, as YOLOv8's
    head reshapes [b, 64, anchors] to [b, 4, 16, anchors]."""
    nodes, x = [], "x"
    constants = {}
    if shape is not None:
        constants["shape"] = np.array(shape, np.int64)
        nodes.append(helper.make_node("Reshape", ["x", "shape"], ["reshaped"]))
        x = "reshaped"
    nodes.append(helper.make_node("Softmax", [x], ["Y"], axis=axis))
    out_shape = ["b", *shape[1:]] if shape else ["b", CONV_N, CONV_HW, CONV_HW]
    return conv_then(nodes, constants=constants, outputs={"Y": out_shape}, opset=opset)


@pytest.mark.parametrize("axis", [1, -3, 2])
@pytest.mark.parametrize("opset", [13, 17, 18, None], ids=["13", "17", "18", "newest"])
def test_a_softmax_along_a_leading_axis_becomes_reductions(axis, opset):
    model = softmax_of_a_conv(axis, opset)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", *REDUCTIONS]
    assert_same_outputs(model, rewritten)


def test_yolov8s_distribution_head_softmax():
    model = softmax_of_a_conv(1, shape=[-1, 2, 4, CONV_HW * CONV_HW])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Reshape", *REDUCTIONS]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "axis, shape",
    [(-1, None), (3, None), (1, [-1, CONV_N * CONV_HW * CONV_HW, 1, 1])],
    ids=["last", "last-counted-from-0", "only-ones-after"],
)
def test_a_softmax_along_the_last_axis_that_matters_stays(axis, shape):
    model = softmax_of_a_conv(axis, shape=shape)
    assert op_types(rewrite(model))[-1] == "Softmax"


def test_before_opset_13_the_axis_flattens_and_the_softmax_stays():
    model = softmax_of_a_conv(1, opset=12)
    assert op_types(rewrite(model)) == ["SparseConv", "Softmax"]


def test_nothing_changes_where_nothing_is_rewritten():
    model = softmax_of_a_conv(1)
    result = rewrite_model(model, min_sparsity=1.0)
    assert result.model.SerializeToString() == model.SerializeToString()
