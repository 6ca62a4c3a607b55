import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CONV_N,
    FORCE_REWRITE,
    assert_same_outputs,
    conv_then,
    conv_weight,
    fused_conv,
    fused_gemm,
    make_model,
    matmul_then,
    op_types,
    rewrite,
    sparse_weight,
)

N = 8
RNG = np.random.default_rng(3)


@pytest.mark.parametrize(
    "bias_shape", [[N], [1, N], [], [1]], ids=["vector", "row", "scalar", "one"]
)
@pytest.mark.parametrize("bias_first", [False, True])
def test_constant_bias_add_is_fused(bias_shape, bias_first):
    bias = RNG.standard_normal(bias_shape).astype(np.float32)
    add_inputs = ["bias", "x"] if bias_first else ["x", "bias"]
    model = matmul_then([helper.make_node("Add", add_inputs, ["Y"])], constants={"bias": bias})
    rewritten = rewrite(model)
    gemm, attrs = fused_gemm(rewritten)
    assert len(gemm.input) == 5 and list(gemm.output) == ["Y"] and attrs["activation"] == "none"
    assert "bias" not in {tensor.name for tensor in rewritten.graph.initializer}
    assert_same_outputs(model, rewritten)


def test_bias_then_relu_fuse_in_order():
    model = matmul_then(
        [helper.make_node("Add", ["x", "bias"], ["z"]), helper.make_node("Relu", ["z"], ["Y"])],
        constants={"bias": RNG.standard_normal([N]).astype(np.float32)},
    )
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["Add", "Relu"]
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert attrs["activation"] == "relu"
    assert_same_outputs(model, rewritten)


def test_bias_after_gemm_c_is_summed_into_one_bias():
    gemm = helper.make_node("Gemm", ["A", "W", "c"], ["x"], name="fc")
    add = helper.make_node("Add", ["x", "bias"], ["Y"])
    constants = {
        "W": sparse_weight(16, N),
        "c": RNG.standard_normal([N]).astype(np.float32),
        "bias": RNG.standard_normal([N]).astype(np.float32),
    }
    model = make_model([gemm, add], {"A": [4, 16]}, {"Y": [4, N]}, constants)
    rewritten = rewrite(model)
    fused_gemm(rewritten)
    assert_same_outputs(model, rewritten)


def test_an_add_after_an_activation_becomes_the_output_shift_not_the_bias():
    model = matmul_then(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "bias"], ["Y"])],
        constants={"bias": RNG.standard_normal([N]).astype(np.float32)},
    )
    rewritten = rewrite(model)
    gemm, attrs = fused_gemm(rewritten)
    assert len(gemm.input) == 4 and "output_shift" in attrs
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "shape", [[3, N], [N, 1], [1, 1, N]], ids=["rows", "column", "higher rank"]
)
def test_constant_that_does_not_broadcast_as_a_bias_is_not_fused(shape):
    model = matmul_then(
        [helper.make_node("Add", ["x", "c"], ["Y"])],
        constants={"c": RNG.standard_normal(shape).astype(np.float32)},
        outputs={"Y": [f"d{axis}" for axis in range(len(shape))]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Add"]


def test_bias_add_is_not_fused_when_the_product_has_another_consumer():
    model = matmul_then(
        [helper.make_node("Add", ["x", "bias"], ["Y"]), helper.make_node("Relu", ["x"], ["Z"])],
        constants={"bias": RNG.standard_normal([N]).astype(np.float32)},
        outputs={"Y": ["b", N], "Z": ["b", N]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Add", "Relu"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "bias_shape",
    [[CONV_N, 1, 1], [1, CONV_N, 1, 1], [], [1, 1, 1]],
    ids=["channel column", "4-D", "scalar", "one"],
)
def test_constant_channel_bias_add_after_a_conv_is_fused(bias_shape):
    bias = RNG.standard_normal(bias_shape).astype(np.float32)
    model = conv_then([helper.make_node("Add", ["bias", "x"], ["Y"])], constants={"bias": bias})
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert len(conv.input) == 5 and list(conv.output) == ["Y"] and attrs["activation"] == "none"
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "shape", [[CONV_N], [1, 1, 1, CONV_N], [CONV_N, CONV_N, 1]], ids=["[N]", "last axis", "rows"]
)
def test_constant_that_does_not_broadcast_along_conv_channels_is_not_fused(shape):
    # The output is [1, N, N, N], so each of these matches N entries, but not along the channels:
    # [N] broadcasts along the width of an NCHW output.
    conv = helper.make_node("Conv", ["X", "W"], ["x"], name="conv", pads=[1, 1, 1, 1])
    model = make_model(
        [conv, helper.make_node("Add", ["x", "c"], ["Y"])],
        {"X": [1, 3, CONV_N, CONV_N]},
        {"Y": [1, CONV_N, CONV_N, CONV_N]},
        {"W": conv_weight(CONV_N, 3, (3, 3)), "c": RNG.standard_normal(shape).astype(np.float32)},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Add"]
    assert_same_outputs(model, rewritten)
