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


def test_relu_is_fused():
    model = matmul_then([helper.make_node("Relu", ["x"], ["Y"])])
    rewritten = rewrite(model)
    gemm, attrs = fused_gemm(rewritten)
    assert attrs["activation"] == "relu" and list(gemm.output) == ["Y"]
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["Relu"]
    assert_same_outputs(model, rewritten)


def test_relu_is_not_fused_when_the_product_has_another_consumer():
    model = matmul_then(
        [helper.make_node("Relu", ["x"], ["Y"]), helper.make_node("Neg", ["x"], ["Z"])],
        outputs={"Y": ["b", 8], "Z": ["b", 8]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Relu", "Neg"]
    assert_same_outputs(model, rewritten)


def test_relu_is_not_fused_when_the_product_is_a_graph_output():
    model = matmul_then(
        [helper.make_node("Relu", ["x"], ["Y"])], outputs={"Y": ["b", 8], "x": ["b", 8]}
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Relu"]
    assert_same_outputs(model, rewritten)


def test_relu_after_a_conv_is_fused():
    model = conv_then([helper.make_node("Relu", ["x"], ["Y"])])
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert attrs["activation"] == "relu" and list(conv.output) == ["Y"]
    assert_same_outputs(model, rewritten)
