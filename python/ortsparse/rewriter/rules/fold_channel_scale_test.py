import numpy as np
import pytest
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
RNG = np.random.default_rng(5)


@pytest.mark.parametrize("shape", [[N], [1, N], [], [1]], ids=["vector", "row", "scalar", "one"])
@pytest.mark.parametrize("factors_first", [False, True])
def test_a_mul_by_channel_factors_after_a_gemm_is_folded(shape, factors_first):
    factors = RNG.uniform(-2, 2, shape).astype(np.float32)
    inputs = ["s", "x"] if factors_first else ["x", "s"]
    model = matmul_then([helper.make_node("Mul", inputs, ["Y"])], constants={"s": factors})
    rewritten = rewrite(model)
    gemm, attrs = fused_gemm(rewritten)
    assert list(gemm.output) == ["Y"] and attrs["activation"] == "none"
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["Mul"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize("shape", [[CONV_N, 1, 1], [1, CONV_N, 1, 1], []])
def test_paddles_folded_batch_norm_and_hard_swish_after_a_conv_fuse_in_order(shape):
    """x * scale + shift, then x * Clip(x + 3, 0, 6) / 6: PP-OCR's conv epilogue."""
    constants = {
        "scale": RNG.uniform(0.5, 2, shape).astype(np.float32),
        "shift": RNG.standard_normal([CONV_N, 1, 1]).astype(np.float32),
        "three": np.float32(3),
        "zero": np.float32(0),
        "six": np.float32(6),
    }
    model = conv_then(
        [
            helper.make_node("Mul", ["scale", "x"], ["scaled"]),
            helper.make_node("Add", ["scaled", "shift"], ["z"]),
            helper.make_node("Add", ["z", "three"], ["p"]),
            helper.make_node("Clip", ["p", "zero", "six"], ["r"]),
            helper.make_node("Mul", ["z", "r"], ["m"]),
            helper.make_node("Div", ["m", "six"], ["Y"]),
        ],
        constants=constants,
    )
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert list(conv.output) == ["Y"] and attrs["activation"] == "hard_swish"
    fused = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused
    assert fused == ["Mul", "Add", "HardSwish(Clip)"]
    assert_same_outputs(model, rewritten)


def test_a_conv_bias_is_scaled_too():
    model = conv_then(
        [helper.make_node("Mul", ["x", "s"], ["Y"])],
        constants={
            "s": RNG.uniform(-2, 2, [CONV_N, 1, 1]).astype(np.float32),
            "B": RNG.standard_normal(CONV_N).astype(np.float32),
        },
    )
    model.graph.node[0].input.append("B")
    rewritten = rewrite(model)
    conv, _ = fused_conv(rewritten)
    assert op_types(rewritten) == ["SparseConv"] and list(conv.output) == ["Y"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "shape", [[1, 1, 1, 6], [CONV_N, 6, 6]], ids=["along the width", "per pixel"]
)
def test_factors_that_do_not_run_along_the_channels_are_not_folded(shape):
    factors = RNG.uniform(-2, 2, shape).astype(np.float32)
    model = conv_then([helper.make_node("Mul", ["x", "s"], ["Y"])], constants={"s": factors})
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Mul"]
    assert_same_outputs(model, rewritten)
