# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU. ORT fuses DQ -> Conv -> Q (per-tensor or per-output-channel
# weight scales, int32 bias) into QLinearConv, whose integer arithmetic and MLAS requantization
# SparseQConv reproduces. Where the Conv's output stays float, ORT convolves the dequantized
# operands in float: outputs agree to float rounding (assert_close_float_outputs).
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import ortsparse
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import rewrite_model
from tests import int8_reference
from tests.quantized_testing import (
    NUMPY_TYPE,
    ONNX_TYPE,
    assert_close_float_outputs,
    assert_close_to,
    assert_identical_outputs,
    constants,
    quantized_inputs,
    sparse_int8_conv_weight,
    with_float_output,
)
from tests.rewriter_testing import op_types, rewrite, run

X_SCALE = np.float32(0.05)


def qdq_conv_model(
    weight,
    x_shape,
    activation="u8",
    per_channel=True,
    bias=True,
    bias_scale=None,
    **conv_attributes,
):
    """Y = Q(Conv(DQ(X), DQ(W), DQ(B))) as onnxruntime.quantization writes it."""
    dtype, elem = NUMPY_TYPE[activation], ONNX_TYPE[activation]
    n = weight.shape[0]
    w_scale = np.linspace(0.004, 0.03, n).astype(np.float32) if per_channel else np.float32(0.01)
    nodes = [
        helper.make_node("DequantizeLinear", ["X", "x_s", "x_z"], ["x"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["W", "w_s", "w_z"], ["w"], name="dq_w", axis=0),
        helper.make_node(
            "Conv", ["x", "w", "b"] if bias else ["x", "w"], ["y"], name="conv", **conv_attributes
        ),
        helper.make_node("QuantizeLinear", ["y", "y_s", "y_z"], ["Y"], name="q_y"),
    ]
    initializers = constants(
        x_s=X_SCALE,
        x_z=dtype(3),
        W=weight,
        w_s=w_scale,
        w_z=np.zeros(np.shape(w_scale), np.int8),
        y_s=np.float32(0.9),
        y_z=dtype(-5 if activation == "s8" else 120),
    )
    if bias:
        nodes.insert(2, helper.make_node("DequantizeLinear", ["B", "b_s", "b_z"], ["b"], axis=0))
        b_scale = (X_SCALE * w_scale).astype(np.float32) if bias_scale is None else bias_scale
        initializers += constants(
            B=np.random.default_rng(1).integers(-20000, 20000, n).astype(np.int32),
            b_s=b_scale,
            b_z=np.zeros(np.shape(b_scale), np.int32),
        )
    graph = helper.make_graph(
        nodes,
        "qdq_conv",
        [helper.make_tensor_value_info("X", elem, x_shape)],
        [helper.make_tensor_value_info("Y", elem, ["yn", "yc", "yh", "yw"])],
        initializers,
    )
    return newest_model_versions().make_model(graph)


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_qdq_conv_becomes_one_sparse_qconv_with_identical_outputs(activation, per_channel):
    weight = sparse_int8_conv_weight(24, 16, (3, 3))
    model = qdq_conv_model(weight, ["b", 16, 10, 9], activation, per_channel, pads=[1, 1, 1, 1])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    assert list(rewritten.graph.node[0].input[:1]) == ["X"]
    for batch in (1, 3):
        assert_identical_outputs(model, rewritten, {"b": batch})


@pytest.mark.parametrize(
    "attributes",
    [
        {"strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"dilations": [2, 1], "pads": [2, 0, 1, 1]},
        {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    ],
)
def test_window_attributes(attributes):
    weight = sparse_int8_conv_weight(12, 6, (3, 3), stored=0.25)
    model = qdq_conv_model(weight, [1, 6, 11, 12], **attributes)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    assert_identical_outputs(model, rewritten, {})


def test_without_bias():
    model = qdq_conv_model(sparse_int8_conv_weight(8, 8, (1, 1)), [2, 8, 5, 5], bias=False)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    assert_identical_outputs(model, rewritten, {})


def test_bias_of_another_scale_is_kept_with_a_reason():
    weight = sparse_int8_conv_weight(8, 8, (1, 1))
    model = qdq_conv_model(weight, [1, 8, 5, 5], bias_scale=np.full(8, 0.5, np.float32))
    result = rewrite_model(model, min_sparsity=0.5)
    assert "SparseQConv" not in op_types(result.model)
    (decision,) = result.decisions
    assert not decision.rewritten and "x_scale * w_scale" in decision.reason


def test_grouped_conv_is_kept_with_a_reason():
    weight = sparse_int8_conv_weight(8, 4, (3, 3))
    model = qdq_conv_model(weight, [1, 8, 6, 6], group=2)
    result = rewrite_model(model, min_sparsity=0.5)
    (decision,) = result.decisions
    assert not decision.rewritten and "group=1" in decision.reason


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_float_output_becomes_one_float_sparse_qconv(activation, per_channel, bias):
    weight = sparse_int8_conv_weight(24, 16, (3, 3))
    model = with_float_output(
        qdq_conv_model(weight, ["b", 16, 10, 9], activation, per_channel, bias, pads=[1, 1, 1, 1])
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    (node,) = rewritten.graph.node
    assert (node.input[0], list(node.output)) == ("X", ["Y"])
    for batch in (1, 3):
        assert_close_float_outputs(model, rewritten, {"b": batch})


def test_float_output_takes_a_float_bias():
    weight, bias = sparse_int8_conv_weight(8, 8, (1, 1)), np.linspace(-2, 2, 8).astype(np.float32)
    model = with_float_output(qdq_conv_model(weight, [1, 8, 5, 5]))
    bias_dequantize = next(node for node in model.graph.node if node.output[0] == "b")
    model.graph.node.remove(bias_dequantize)
    model.graph.initializer.append(numpy_helper.from_array(bias, "b"))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQConv"]
    # onnxruntime 1.21 rounds a QDQ Conv's float bias to whole units of x_scale * w_scale (its
    # BiasQuantization optimization, which disabled_optimizers does not turn off), up to half a
    # unit off the model's bias; 1.22 adds it as it is, as SparseQConv does. The model's outputs
    # are those of the convolution without the bias, plus the bias.
    unbiased = with_float_output(qdq_conv_model(weight, [1, 8, 5, 5], bias=False))
    inputs = quantized_inputs(model, {})
    (convolution,) = int8_reference.expected_outputs(unbiased, inputs)
    assert_close_to([convolution + bias.reshape(-1, 1, 1)], rewritten, inputs)


def test_float_output_with_a_bias_of_another_scale_is_kept_with_a_reason():
    # As for the requantized form: the integers mean to ORT's fused ops what they mean to the
    # model only in units of x_scale * w_scale.
    weight = sparse_int8_conv_weight(8, 8, (1, 1))
    model = with_float_output(
        qdq_conv_model(weight, [1, 8, 5, 5], bias_scale=np.full(8, 0.5, np.float32))
    )
    result = rewrite_model(model, min_sparsity=0.5)
    (decision,) = result.decisions
    assert not decision.rewritten and "x_scale * w_scale" in decision.reason


def test_output_read_by_a_quantize_and_float_ops_stays_float():
    # Not one QuantizeLinear alone reads the Conv: its float output goes to both, and the
    # QuantizeLinear stays with ORT (within one step of ORT's, as float rounding may differ).
    model = qdq_conv_model(sparse_int8_conv_weight(8, 8, (3, 3)), [1, 8, 6, 6], pads=[1, 1, 1, 1])
    model.graph.node.append(helper.make_node("Relu", ["y"], ["Z"]))
    model.graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, [1, 8, 6, 6]))
    rewritten = rewrite(model)
    assert sorted(op_types(rewritten)) == ["QuantizeLinear", "Relu", "SparseQConv"]
    inputs = quantized_inputs(model, {})
    want_y, want_z = run(model, inputs)
    got_y, got_z = run(rewritten, inputs, ortsparse.library_path())
    assert np.max(np.abs(got_y.astype(int) - want_y.astype(int))) <= 1
    np.testing.assert_allclose(got_z, want_z, rtol=0, atol=1e-5 * np.max(np.abs(want_z)))


def test_dense_weight_is_left_to_ort():
    model = qdq_conv_model(sparse_int8_conv_weight(8, 8, (3, 3), stored=0.9), [1, 8, 5, 5])
    result = rewrite_model(model)
    (decision,) = result.decisions
    assert not decision.rewritten and "quads hold a weight" in decision.reason
