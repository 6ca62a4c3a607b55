# Outputs must be identical to ORT's: ORT fuses DQ -> Conv -> Q (per-tensor or per-output-channel
# weight scales, int32 bias) into QLinearConv, whose integer arithmetic and MLAS requantization
# SparseQConv reproduces.
import numpy as np
import pytest
from onnx import TensorProto, helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.quantized_testing import (
    NUMPY_TYPE,
    ONNX_TYPE,
    OPSET,
    assert_identical_outputs,
    constants,
    sparse_int8_conv_weight,
)
from ortsparse.rewriter.testing import op_types, rewrite

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
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


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


def test_unquantized_output_is_kept_with_a_reason():
    model = qdq_conv_model(sparse_int8_conv_weight(8, 8, (1, 1)), [1, 8, 5, 5])
    model.graph.node.remove(model.graph.node[-1])
    model.graph.output[0].CopyFrom(
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["yn", "yc", "yh", "yw"])
    )
    result = rewrite_model(model, min_sparsity=0.5)
    (decision,) = result.decisions
    assert not decision.rewritten and "QuantizeLinear" in decision.reason


def test_dense_weight_is_left_to_ort():
    model = qdq_conv_model(sparse_int8_conv_weight(8, 8, (3, 3), stored=0.9), [1, 8, 5, 5])
    result = rewrite_model(model)
    (decision,) = result.decisions
    assert not decision.rewritten and "quads hold a weight" in decision.reason
