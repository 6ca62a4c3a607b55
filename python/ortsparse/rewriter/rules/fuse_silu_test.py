import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    conv_then,
    fused_conv,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)


@pytest.mark.parametrize("mul_inputs", [["x", "s"], ["s", "x"]])
def test_x_times_sigmoid_x_is_fused_as_silu(mul_inputs):
    model = matmul_then(
        [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", mul_inputs, ["Y"])]
    )
    rewritten = rewrite(model)
    gemm, attrs = fused_gemm(rewritten)
    assert attrs["activation"] == "silu" and list(gemm.output) == ["Y"]
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["SiLU"]
    assert_same_outputs(model, rewritten)


def test_sigmoid_of_another_tensor_is_not_silu():
    model = matmul_then(
        [helper.make_node("Sigmoid", ["B"], ["s"]), helper.make_node("Mul", ["x", "s"], ["Y"])],
        extra_inputs={"B": ["b", 8]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Sigmoid", "Mul"]
    assert_same_outputs(model, rewritten)


def test_silu_is_not_fused_when_the_sigmoid_is_read_elsewhere():
    model = matmul_then(
        [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["Y"])],
        outputs={"Y": ["b", 8], "s": ["b", 8]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Sigmoid", "Mul"]
    assert_same_outputs(model, rewritten)


def test_x_times_sigmoid_x_after_a_conv_is_fused_as_silu():
    # As YOLOv5/v8 export their Conv + SiLU blocks.
    model = conv_then(
        [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["Y"])]
    )
    rewritten = rewrite(model)
    _, attrs = fused_conv(rewritten)
    assert attrs["activation"] == "silu"
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["SiLU"]
    assert_same_outputs(model, rewritten)
