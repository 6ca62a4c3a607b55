# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU: SparseQConv reproduces QLinearConv's integer arithmetic and
# MLAS requantization.
import numpy as np
import pytest
from onnx import helper

from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import rewrite_model
from tests.quantized_testing import (
    NUMPY_TYPE,
    ONNX_TYPE,
    assert_identical_outputs,
    constants,
    sparse_int8_conv_weight,
)
from tests.rewriter_testing import op_types, rewrite


def qlinear_conv_model(weight, x_shape, activation="u8", bias=True, **conv_attributes):
    dtype, elem = NUMPY_TYPE[activation], ONNX_TYPE[activation]
    n = weight.shape[0]
    inputs = ["X", "x_s", "x_z", "W", "w_s", "w_z", "y_s", "y_z"] + (["B"] if bias else [])
    node = helper.make_node("QLinearConv", inputs, ["Y"], name="qconv", **conv_attributes)
    initializers = constants(
        x_s=np.float32(0.05),
        x_z=dtype(-7 if activation == "s8" else 30),
        W=weight,
        w_s=np.linspace(0.004, 0.03, n).astype(np.float32),
        w_z=np.zeros(n, np.int8),
        y_s=np.float32(0.8),
        y_z=dtype(2),
    )
    if bias:
        initializers += constants(B=np.arange(-n // 2, n - n // 2, dtype=np.int32) * 997)
    graph = helper.make_graph(
        [node],
        "qlinear_conv",
        [helper.make_tensor_value_info("X", elem, x_shape)],
        [helper.make_tensor_value_info("Y", elem, ["yn", "yc", "yh", "yw"])],
        initializers,
    )
    return newest_model_versions().make_model(graph)


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("bias", [True, False])
def test_qlinear_conv_becomes_sparse_qconv_with_identical_outputs(activation, bias):
    weight = sparse_int8_conv_weight(20, 12, (3, 3))
    model = qlinear_conv_model(
        weight, ["b", 12, 9, 9], activation, bias, strides=[2, 2], pads=[1, 1, 1, 1]
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    for batch in (1, 2):
        assert_identical_outputs(model, rewritten, {"b": batch})


def test_non_constant_bias_is_kept_with_a_reason():
    model = qlinear_conv_model(sparse_int8_conv_weight(4, 4, (1, 1)), [1, 4, 3, 3])
    bias = model.graph.initializer.pop()
    model.graph.input.append(helper.make_tensor_value_info(bias.name, bias.data_type, [4]))
    result = rewrite_model(model, min_sparsity=0.5)
    (decision,) = result.decisions
    assert not decision.rewritten and "bias is not a constant" in decision.reason
