import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    conv_then,
    fused_conv,
    matmul_then,
    op_types,
    rewrite,
)


def x_times_hard_sigmoid(mul_inputs=("x", "g"), **attributes):
    return [
        helper.make_node("HardSigmoid", ["x"], ["g"], **attributes),
        helper.make_node("Mul", list(mul_inputs), ["Y"]),
    ]


def test_hard_swish_after_a_conv_is_fused():
    model = conv_then([helper.make_node("HardSwish", ["x"], ["Y"])])
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert attrs["activation"] == "hard_swish" and list(conv.output) == ["Y"]
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["HardSwish"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "mul_inputs,attributes",
    [(("x", "g"), {"alpha": 1 / 6}), (("g", "x"), {"alpha": 1 / 6, "beta": 0.5})],
    ids=["default beta", "both attributes"],
)
def test_x_times_hard_sigmoid_after_a_conv_is_fused_as_hard_swish(mul_inputs, attributes):
    model = conv_then(x_times_hard_sigmoid(mul_inputs, **attributes), opset=13)
    rewritten = rewrite(model)
    _, attrs = fused_conv(rewritten)
    assert attrs["activation"] == "hard_swish"
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["HardSwish"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "attributes", [{}, {"alpha": 1 / 6, "beta": 0.6}], ids=["default alpha", "other beta"]
)
def test_x_times_another_hard_sigmoid_is_not_fused(attributes):
    model = conv_then(x_times_hard_sigmoid(**attributes))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "HardSigmoid", "Mul"]
    assert_same_outputs(model, rewritten)


def test_hard_swish_after_a_sparse_gemm_is_not_fused():
    # SparseGemm's kernel has no hard_swish.
    model = matmul_then([helper.make_node("HardSwish", ["x"], ["Y"])])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "HardSwish"]
    assert_same_outputs(model, rewritten)
