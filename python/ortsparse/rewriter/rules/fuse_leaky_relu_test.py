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


@pytest.mark.parametrize(
    "attributes,alpha", [({"alpha": 0.1}, 0.1), ({}, 0.01)], ids=["alpha", "default alpha"]
)
def test_leaky_relu_after_a_conv_is_fused(attributes, alpha):
    model = conv_then([helper.make_node("LeakyRelu", ["x"], ["Y"], **attributes)])
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert attrs["activation"] == "leaky_relu" and list(conv.output) == ["Y"]
    assert attrs["alpha"] == pytest.approx(alpha)
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["LeakyRelu"]
    assert_same_outputs(model, rewritten)


def test_leaky_relu_after_a_sparse_gemm_is_not_fused():
    # SparseGemm's kernel has no leaky_relu.
    model = matmul_then([helper.make_node("LeakyRelu", ["x"], ["Y"], alpha=0.1)])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "LeakyRelu"]
    assert_same_outputs(model, rewritten)
