import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CHAIN_N,
    CONV_HW,
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

RNG = np.random.default_rng(11)


def fused_steps(model):
    return rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused


@pytest.mark.parametrize("shape", [[], [1], [CONV_N, 1, 1]], ids=["scalar", "one", "channels"])
def test_pp_lcnet_v3s_learnable_affine_after_hard_swish_is_fused(shape):
    """Conv -> x * Clip(x + 3, 0, 6) / 6 -> x * scale + shift: PP-LCNetV3's epilogue."""
    constants = {
        "scale": RNG.uniform(0.5, 2, shape).astype(np.float32),
        "shift": RNG.standard_normal(shape).astype(np.float32),
        "three": np.float32(3),
        "zero": np.float32(0),
        "six": np.float32(6),
    }
    model = conv_then(
        [
            helper.make_node("Add", ["x", "three"], ["p"]),
            helper.make_node("Clip", ["p", "zero", "six"], ["r"]),
            helper.make_node("Mul", ["x", "r"], ["m"]),
            helper.make_node("Div", ["m", "six"], ["h"]),
            helper.make_node("Mul", ["h", "scale"], ["scaled"]),
            helper.make_node("Add", ["shift", "scaled"], ["Y"]),
        ],
        constants=constants,
    )
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert list(conv.output) == ["Y"] and attrs["activation"] == "hard_swish"
    scale = numpy_helper.to_array(attrs["output_scale"])
    shift = numpy_helper.to_array(attrs["output_shift"])
    np.testing.assert_array_equal(scale, np.broadcast_to(constants["scale"].reshape(-1), [CONV_N]))
    np.testing.assert_array_equal(shift, np.broadcast_to(constants["shift"].reshape(-1), [CONV_N]))
    fused = fused_steps(model)
    assert fused[-2:] == ["Mul/Add after the activation"] * 2
    assert_same_outputs(model, rewritten)


def test_an_add_then_a_mul_after_a_gemms_activation_compose():
    s = RNG.uniform(0.5, 2, [CHAIN_N]).astype(np.float32)
    t = RNG.standard_normal([1, CHAIN_N]).astype(np.float32)
    model = matmul_then(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Add", ["r", "t"], ["shifted"]),
            helper.make_node("Mul", ["s", "shifted"], ["Y"]),
        ],
        constants={"s": s, "t": t},
    )
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    np.testing.assert_allclose(numpy_helper.to_array(attrs["output_shift"]), t[0] * s, rtol=1e-6)
    assert_same_outputs(model, rewritten)


def test_a_residual_added_after_the_affine_joins_it():
    model = conv_then(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Mul", ["r", "s"], ["scaled"]),
            helper.make_node("Add", ["scaled", "R"], ["Y"]),
        ],
        extra_inputs={"R": ["b", CONV_N, CONV_HW, CONV_HW]},
        constants={"s": RNG.uniform(0.5, 2, [CONV_N, 1, 1]).astype(np.float32)},
    )
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert "output_scale" in attrs and conv.input[5] == "R"
    assert_same_outputs(model, rewritten)


def test_a_mul_after_a_residual_is_left_to_ort():
    # The residual, added after the activation, would be scaled too.
    model = conv_then(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Add", ["r", "R"], ["summed"]),
            helper.make_node("Mul", ["summed", "s"], ["Y"]),
        ],
        extra_inputs={"R": ["b", CONV_N, CONV_HW, CONV_HW]},
        constants={"s": RNG.uniform(0.5, 2, [CONV_N, 1, 1]).astype(np.float32)},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Mul"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "shape", [[1, 1, 1, CONV_HW], [CONV_N, CONV_HW, CONV_HW]], ids=["along the width", "per pixel"]
)
def test_factors_that_do_not_run_along_the_channels_are_left_to_ort(shape):
    model = conv_then(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "s"], ["Y"])],
        constants={"s": RNG.uniform(0.5, 2, shape).astype(np.float32)},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Mul"]
    assert_same_outputs(model, rewritten)


def test_a_mul_before_the_activation_folds_into_the_weights_instead():
    model = conv_then(
        [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Relu", ["m"], ["Y"])],
        constants={"s": RNG.uniform(0.5, 2, [CONV_N, 1, 1]).astype(np.float32)},
    )
    _, attrs = fused_conv(rewrite(model))
    assert "output_scale" not in attrs
