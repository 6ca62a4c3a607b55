# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU. ORT runs DequantizeLinear pair -> Add -> QuantizeLinear as
# QLinearAdd, whose x86-64 arithmetic SparseQConv's residual Add reproduces (see
# tests/test_sparse_qconv_residual.py).
import numpy as np
import pytest
from onnx import helper

from ortsparse.model_versions import newest_model_versions
from tests.quantized_testing import (
    NUMPY_TYPE,
    ONNX_TYPE,
    assert_identical_outputs,
    constants,
    sparse_int8_conv_weight,
)
from tests.rewriter_testing import attributes, onnxruntime_older_than, op_types, rewrite


def residual_block_model(
    activation="u8",
    residual_first=False,
    r_shape=None,
    per_channel_sum=False,
    conv_output_read=False,
):
    """Y = Q(DQ(Q(Conv(DQ(X), DQ(W)))) + DQ(R)): a quantized ResNet block's join, with the
    zero points of both Add operands nonzero."""
    dtype, elem = NUMPY_TYPE[activation], ONNX_TYPE[activation]
    weight = sparse_int8_conv_weight(16, 8, (3, 3))
    conv_operand, residual_operand = "a", "r"
    add_inputs = (
        [residual_operand, conv_operand] if residual_first else [conv_operand, residual_operand]
    )
    nodes = [
        helper.make_node("DequantizeLinear", ["X", "x_s", "x_z"], ["x"]),
        helper.make_node("DequantizeLinear", ["W", "w_s", "w_z"], ["w"], axis=0),
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "a_s", "a_z"], ["A"]),
        helper.make_node("DequantizeLinear", ["A", "a_s", "a_z"], ["a"]),
        helper.make_node("DequantizeLinear", ["R", "r_s", "r_z"], ["r"]),
        helper.make_node("Add", add_inputs, ["s"]),
        helper.make_node("QuantizeLinear", ["s", "s_s", "s_z"], ["Y"]),
    ]
    sum_scale = (
        np.linspace(0.2, 0.3, 16).astype(np.float32) if per_channel_sum else np.float32(0.21)
    )
    initializers = constants(
        x_s=np.float32(0.05),
        x_z=dtype(3),
        W=weight,
        w_s=np.linspace(0.004, 0.03, 16).astype(np.float32),
        w_z=np.zeros(16, np.int8),
        a_s=np.float32(0.37),
        a_z=dtype(-9 if activation == "s8" else 131),
        r_s=np.float32(0.13),
        r_z=dtype(17),
        s_s=sum_scale,
        s_z=np.full(np.shape(sum_scale), 12, dtype),
    )
    outputs = [helper.make_tensor_value_info("Y", elem, ["n", 16, 6, 7])]
    if conv_output_read:
        outputs.append(helper.make_tensor_value_info("A", elem, ["n", 16, 6, 7]))
    graph = helper.make_graph(
        nodes,
        "block",
        [
            helper.make_tensor_value_info("X", elem, ["n", 8, 6, 7]),
            helper.make_tensor_value_info("R", elem, r_shape or ["n", 16, 6, 7]),
        ],
        outputs,
        initializers,
    )
    return newest_model_versions().make_model(graph)


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("residual_first", [False, True])
def test_add_joins_the_sparse_qconv_with_identical_outputs(activation, residual_first):
    model = residual_block_model(activation, residual_first)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    (node,) = rewritten.graph.node
    assert list(node.input[5:]) == ["", "R"] and list(node.output) == ["Y"]
    assert attributes(node)["residual_input"] == (0 if residual_first else 1)
    for batch in (1, 2):
        assert_identical_outputs(model, rewritten, {"n": batch})


@pytest.mark.parametrize(
    "change",
    [
        {"r_shape": ["n", 16, 1, 1]},  # broadcast: the op adds R of Y's shape only
        {"per_channel_sum": True},
        {"conv_output_read": True},  # the conv's quantized output is needed as it is
    ],
)
def test_other_adds_stay_with_ort(change):
    model = residual_block_model(**change)
    rewritten = rewrite(model)
    assert "SparseQConv" in op_types(rewritten) and "Add" in op_types(rewritten)
    if change.get("per_channel_sum") and onnxruntime_older_than(1, 32):
        pytest.skip(
            "onnxruntime before 1.32 fuses an Add requantized per channel into QLinearAdd, whose "
            "type inference then fails: it loads neither the model nor its rewrite"
        )
    assert_identical_outputs(model, rewritten, {"n": 1})
