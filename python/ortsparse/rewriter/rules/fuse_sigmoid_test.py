from onnx import helper

from tests.rewriter_testing import (
    assert_same_outputs,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)


def test_sigmoid_is_fused():
    model = matmul_then([helper.make_node("Sigmoid", ["x"], ["Y"])])
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert attrs["activation"] == "sigmoid"
    assert_same_outputs(model, rewritten)


def test_sigmoid_is_not_fused_when_the_product_is_a_graph_output():
    model = matmul_then(
        [helper.make_node("Sigmoid", ["x"], ["Y"])], outputs={"Y": ["b", 8], "x": ["b", 8]}
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Sigmoid"]
    assert_same_outputs(model, rewritten)
