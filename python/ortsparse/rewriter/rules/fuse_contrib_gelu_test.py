import numpy as np
import pytest
from onnx import helper

from tests.rewriter_testing import (
    CHAIN_N,
    assert_same_outputs,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)

MS_OPSET = helper.make_opsetid("com.microsoft", 1)


def contrib_model(op_type, inputs=("x",), constants=None):
    model = matmul_then(
        [helper.make_node(op_type, list(inputs), ["Y"], domain="com.microsoft")],
        constants=constants,
    )
    model.opset_import.append(MS_OPSET)
    return model


@pytest.mark.parametrize("op_type,activation", [("Gelu", "gelu"), ("FastGelu", "gelu_tanh")])
def test_contrib_gelu_is_fused(op_type, activation):
    model = contrib_model(op_type)
    rewritten = rewrite(model)
    _, attributes = fused_gemm(rewritten)
    assert attributes["activation"] == activation
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize("op_type,activation", [("BiasGelu", "gelu"), ("FastGelu", "gelu_tanh")])
def test_contrib_gelu_with_a_bias_input_is_fused_with_its_bias(op_type, activation):
    bias = np.linspace(-1, 1, CHAIN_N, dtype=np.float32)
    model = contrib_model(op_type, ("x", "bias"), {"bias": bias})
    rewritten = rewrite(model)
    _, attributes = fused_gemm(rewritten)
    assert attributes["activation"] == activation
    assert_same_outputs(model, rewritten)


def test_bias_gelu_after_a_bias_add_sums_the_biases():
    model = matmul_then(
        [
            helper.make_node("Add", ["x", "first_bias"], ["biased"]),
            helper.make_node("BiasGelu", ["biased", "bias"], ["Y"], domain="com.microsoft"),
        ],
        constants={
            "first_bias": np.full(CHAIN_N, 0.5, np.float32),
            "bias": np.linspace(-1, 1, CHAIN_N, dtype=np.float32),
        },
    )
    model.opset_import.append(MS_OPSET)
    rewritten = rewrite(model)
    _, attributes = fused_gemm(rewritten)
    assert attributes["activation"] == "gelu"
    assert_same_outputs(model, rewritten)


def test_bias_gelu_with_a_bias_fed_at_run_time_is_left_to_ort():
    model = matmul_then(
        [helper.make_node("BiasGelu", ["x", "bias"], ["Y"], domain="com.microsoft")],
        extra_inputs={"bias": [CHAIN_N]},
    )
    model.opset_import.append(MS_OPSET)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "BiasGelu"]
    assert_same_outputs(model, rewritten)
