import numpy as np
import pytest
from onnx import helper, numpy_helper

from tests.rewriter_testing import (
    assert_same_outputs,
    conv_then,
    fused_conv,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)

FLOAT32_MAX = float(np.finfo(np.float32).max)


def scalar(value):
    return np.array(value, dtype=np.float32)


def test_clip_6_bounds_come_from_attributes():
    model = matmul_then([helper.make_node("Clip", ["x"], ["Y"], min=-0.5, max=1.0)], opset=10)
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert (attrs["activation"], attrs["clip_min"], attrs["clip_max"]) == ("clip", -0.5, 1.0)
    assert_same_outputs(model, rewritten)


def test_clip_6_absent_bound_is_the_float_limit():
    model = matmul_then([helper.make_node("Clip", ["x"], ["Y"], max=0.0)], opset=10)
    _, attrs = fused_gemm(rewrite(model))
    assert (attrs["clip_min"], attrs["clip_max"]) == (-FLOAT32_MAX, 0.0)


@pytest.mark.parametrize(
    "clip_inputs,expected",
    [
        (["x", "lo", "hi"], (-0.5, 1.0)),
        (["x", "lo"], (-0.5, FLOAT32_MAX)),
        (["x", "", "hi"], (-FLOAT32_MAX, 1.0)),
    ],
    ids=["both", "min only", "max only"],
)
def test_clip_11_bounds_come_from_constant_inputs(clip_inputs, expected):
    model = matmul_then(
        [helper.make_node("Clip", clip_inputs, ["Y"])],
        constants={"lo": scalar(-0.5), "hi": scalar(1.0)},
    )
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert (attrs["clip_min"], attrs["clip_max"]) == expected
    assert_same_outputs(model, rewritten)


def test_clip_bounds_from_constant_nodes():
    model = matmul_then(
        [
            helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(scalar(0.0))),
            helper.make_node("Constant", [], ["hi"], value=numpy_helper.from_array(scalar(6.0))),
            helper.make_node("Clip", ["x", "lo", "hi"], ["Y"]),
        ]
    )
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert (attrs["clip_min"], attrs["clip_max"]) == (0.0, 6.0)
    assert_same_outputs(model, rewritten)


def test_clip_with_a_non_constant_bound_is_not_fused():
    model = matmul_then([helper.make_node("Clip", ["x", "lo"], ["Y"])], extra_inputs={"lo": []})
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Clip"]
    assert_same_outputs(model, rewritten)


def test_relu6_after_a_conv_is_fused_as_clip():
    # As MobileNet exports ReLU6.
    model = conv_then(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["Y"])],
        constants={"lo": scalar(0.0), "hi": scalar(6.0)},
    )
    rewritten = rewrite(model)
    _, attrs = fused_conv(rewritten)
    assert (attrs["activation"], attrs["clip_min"], attrs["clip_max"]) == ("clip", 0.0, 6.0)
    assert_same_outputs(model, rewritten)
