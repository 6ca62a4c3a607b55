# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU. ConvInteger and SparseConvInteger both compute the exact
# int32 convolution.
import pytest
from onnx import TensorProto

from ortsparse.rewriter import rewrite_model
from tests.quantized_testing import (
    assert_identical_outputs,
    conv_integer_model,
    sparse_int8_conv_weight,
)
from tests.rewriter_testing import attributes, op_types, rewrite

WINDOWS = {
    "3x3": ((3, 3), {"pads": [1, 1, 1, 1]}),
    "3x3_stride2": ((3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "1x1": ((1, 1), {}),
    "same_upper": ((3, 3), {"auto_pad": "SAME_UPPER"}),
}


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("a_zero_point", ["constant", "input", "none"])
@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_conv_integer_becomes_sparse_conv_integer_with_identical_outputs(
    activation, a_zero_point, window
):
    kernel, attrs = WINDOWS[window]
    weight = sparse_int8_conv_weight(12, 10, kernel)
    model = conv_integer_model(weight, ["b", 10, 9, 9], activation, a_zero_point, **attrs)
    rewritten = rewrite(model)

    assert op_types(rewritten) == ["SparseConvInteger"]
    (node,) = rewritten.graph.node
    node_attributes = attributes(node)
    assert (node_attributes["C"], node_attributes["N"]) == (10, 12)
    assert node_attributes["kernel_shape"] == list(kernel)
    assert len(node.input) == (4 if a_zero_point == "none" else 5)
    for batch in (1, 2):
        assert_identical_outputs(model, rewritten, {"b": batch})


def kept_reason(model):
    result = rewrite_model(model, min_sparsity=0.5)
    assert op_types(result.model) == ["ConvInteger"]
    (decision,) = result.decisions
    assert not decision.rewritten
    return decision.reason


def test_nonzero_weight_zero_point_is_kept_with_a_reason():
    model = conv_integer_model(sparse_int8_conv_weight(8, 8, (3, 3)), [1, 8, 6, 6])
    zero_point = next(t for t in model.graph.initializer if t.name == "w_z")
    zero_point.raw_data = bytes([1])
    assert "weight zero point is not 0" in kept_reason(model)


def test_grouped_conv_is_kept_with_a_reason():
    model = conv_integer_model(sparse_int8_conv_weight(8, 4, (3, 3)), [1, 8, 6, 6], group=2)
    assert "grouped convolution" in kept_reason(model)


def test_1d_conv_is_kept_with_a_reason():
    weight = sparse_int8_conv_weight(8, 8, (3, 3))[:, :, 0]
    model = conv_integer_model(weight, [1, 8, 6])
    model.graph.output[0].type.tensor_type.shape.dim.pop()
    assert "weight is 3-D" in kept_reason(model)


def test_uint8_weight_is_kept_with_a_reason():
    model = conv_integer_model(sparse_int8_conv_weight(8, 8, (3, 3)), [1, 8, 6, 6])
    for tensor in model.graph.initializer:
        if tensor.name in ("W", "w_z"):
            tensor.data_type = TensorProto.UINT8
    assert "SparseConvInteger takes int8" in kept_reason(model)
