import pytest
from onnx import helper

from tests.rewriter_testing import assert_same_outputs, fused_gemm, matmul_then, rewrite


@pytest.mark.parametrize(
    "approximate,activation", [(None, "gelu"), ("none", "gelu"), ("tanh", "gelu_tanh")]
)
def test_gelu_20_is_fused(approximate, activation):
    attrs = {} if approximate is None else {"approximate": approximate}
    model = matmul_then([helper.make_node("Gelu", ["x"], ["Y"], **attrs)], opset=20)
    rewritten = rewrite(model)
    _, fused_attrs = fused_gemm(rewritten)
    assert fused_attrs["activation"] == activation
    assert_same_outputs(model, rewritten)
