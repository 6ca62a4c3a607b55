import numpy as np
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CONV_N,
    FORCE_REWRITE,
    assert_same_outputs,
    conv_then,
    fused_conv,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)

N = 8


def test_residual_after_the_activation_is_added_last():
    model = matmul_then(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["R", "r"], ["Y"])],
        extra_inputs={"R": ["b", N]},
    )
    rewritten = rewrite(model)
    gemm, attrs = fused_gemm(rewritten)
    assert gemm.input[4] == "" and gemm.input[5] == "R"
    assert (attrs["activation"], attrs["residual_before_activation"]) == ("relu", 0)
    assert_same_outputs(model, rewritten)


def test_residual_before_the_activation_joins_its_input():
    model = matmul_then(
        [helper.make_node("Add", ["x", "R"], ["s"]), helper.make_node("Sigmoid", ["s"], ["Y"])],
        extra_inputs={"R": ["b", N]},
    )
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["Add", "Sigmoid"]
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert (attrs["activation"], attrs["residual_before_activation"]) == ("sigmoid", 1)
    assert_same_outputs(model, rewritten)


def test_residual_computed_after_the_matmul_keeps_the_graph_in_order():
    model = matmul_then(
        [helper.make_node("Neg", ["B"], ["R"]), helper.make_node("Add", ["x", "R"], ["Y"])],
        extra_inputs={"B": ["b", N]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Neg", "SparseGemm"]
    assert_same_outputs(model, rewritten)


def test_broadcast_residual_is_not_fused():
    model = matmul_then([helper.make_node("Add", ["x", "R"], ["Y"])], extra_inputs={"R": [N]})
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Add"]
    assert_same_outputs(model, rewritten)


def test_residual_whose_dims_are_not_known_to_match_is_not_fused():
    model = matmul_then(
        [helper.make_node("Add", ["x", "R"], ["Y"])],
        extra_inputs={"R": ["other", N]},
        outputs={"Y": ["y", N]},
    )
    assert op_types(rewrite(model)) == ["SparseGemm", "Add"]


def test_second_residual_is_not_fused():
    model = matmul_then(
        [helper.make_node("Add", ["x", "R"], ["s"]), helper.make_node("Add", ["s", "Q"], ["Y"])],
        extra_inputs={"R": ["b", N], "Q": ["b", N]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Add"]
    assert_same_outputs(model, rewritten)


def test_resnet_block_conv_batch_norm_residual_relu_becomes_one_sparse_conv():
    rng = np.random.default_rng(11)
    batch_norm = {
        name: rng.uniform(0.5, 1.5, CONV_N).astype(np.float32)
        for name in ("scale", "shift", "mean", "var")
    }
    model = conv_then(
        [
            helper.make_node(
                "BatchNormalization", ["x", "scale", "shift", "mean", "var"], ["n"]
            ),
            helper.make_node("Add", ["n", "R"], ["s"]),
            helper.make_node("Relu", ["s"], ["Y"]),
        ],
        extra_inputs={"R": ["b", CONV_N, 6, 6]},
        constants=batch_norm,
    )
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert result.decisions[0].fused == ["BatchNormalization", "Add", "Relu"]
    conv, attrs = fused_conv(result.model)
    assert conv.input[5] == "R"
    assert (attrs["activation"], attrs["residual_before_activation"]) == ("relu", 1)
    assert_same_outputs(model, result.model)
