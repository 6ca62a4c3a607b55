import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter.testing import (
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


def test_fast_gelu_with_a_bias_input_is_left_to_ort():
    model = contrib_model("FastGelu", ("x", "bias"), {"bias": np.ones(CHAIN_N, np.float32)})
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "FastGelu"]
    assert_same_outputs(model, rewritten)
