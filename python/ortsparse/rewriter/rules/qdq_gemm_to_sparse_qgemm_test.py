# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU. ORT fuses the QDQ Gemm into QGemm, which adds the int32 bias
# to the exact int32 product and requantizes with x_scale * w_scale[n] / y_scale per column, as
# SparseQGemm does, per tensor and per channel alike. Where the Gemm's output stays float, ORT
# multiplies the dequantized operands in float: outputs agree to float rounding
# (assert_close_float_outputs).
import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import rewrite_model
from tests.quantized_testing import (
    A_SCALE,
    assert_close_float_outputs,
    assert_identical_outputs,
    qdq_gemm_model,
    sparse_int8_weight,
    with_float_output,
)
from tests.rewriter_testing import op_types, rewrite

K, N = 66, 40  # K not a multiple of 4: the last quad is padded
WEIGHT = sparse_int8_weight(K, N, quads=True)
SCALES = {
    "per_tensor": np.float32(0.02),
    # Small enough that few outputs saturate, which would hide a wrong bias or scale.
    "per_channel": np.linspace(0.004, 0.03, N).astype(np.float32),
}
BIAS = np.random.default_rng(5).integers(-20000, 20000, N).astype(np.int32)


@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("trans_b", [0, 1], ids=["transB0", "transB1"])
@pytest.mark.parametrize("scales", sorted(SCALES))
@pytest.mark.parametrize("activation", ["u8", "s8"])
def test_qdq_gemm_becomes_one_sparse_qgemm_with_identical_outputs(
    activation, scales, trans_b, with_bias
):
    bias = BIAS if with_bias else None
    model = qdq_gemm_model(WEIGHT, "m", activation, SCALES[scales], bias, transB=trans_b)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQGemm"]
    (node,) = rewritten.graph.node
    assert (node.input[0], list(node.output)) == ("A", ["Y"])
    initializers = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    if with_bias:
        np.testing.assert_array_equal(initializers[node.input[5]], BIAS)
    else:
        assert len(node.input) == 5
    for m in (1, 37):
        assert_identical_outputs(model, rewritten, {"m": m})


@pytest.mark.parametrize("bias", ["none", "dequantized", "float"])
@pytest.mark.parametrize("trans_b", [0, 1], ids=["transB0", "transB1"])
@pytest.mark.parametrize("activation", ["u8", "s8"])
def test_float_output_becomes_one_float_sparse_qgemm(activation, trans_b, bias):
    model = with_float_output(
        qdq_gemm_model(
            WEIGHT,
            "m",
            activation,
            SCALES["per_channel"],
            None if bias == "none" else BIAS,
            transB=trans_b,
        )
    )
    if bias == "float":
        model = _float_bias(model)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQGemm"]
    for m in (1, 37):
        assert_close_float_outputs(model, rewritten, {"m": m})


def _float_bias(model):
    bias_dq = next(node for node in model.graph.node if node.name == "dq_b")
    model.graph.node.remove(bias_dq)
    model.graph.initializer.append(numpy_helper.from_array(BIAS.astype(np.float32), "b"))
    return model


def _scales_along_k(model):
    """W [K, N] with one scale per input feature (axis 0)."""
    _with_initializer(model, "w_s", np.full(K, 0.02, np.float32))
    _with_initializer(model, "w_z", np.zeros(K, np.int8))
    weight_dq = next(node for node in model.graph.node if node.name == "dq_w")
    weight_dq.attribute.append(helper.make_attribute("axis", 0))
    return model


def _with_initializer(model, name, value):
    tensor = next(t for t in model.graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(value, name))
    return model


KEPT = {
    "alpha": (lambda: qdq_gemm_model(WEIGHT, "m", bias=BIAS, alpha=0.5), "alpha is not 1"),
    "transA": (lambda: qdq_gemm_model(WEIGHT, "m", transA=1), "transA=1"),
    "beta": (lambda: qdq_gemm_model(WEIGHT, "m", bias=BIAS, beta=0.5), "beta is not 1"),
    "bias_scale": (
        lambda: qdq_gemm_model(WEIGHT, "m", bias=BIAS, bias_scale=A_SCALE * np.float32(0.04)),
        "the bias's scale is not x_scale * w_scale",
    ),
    "bias_zero_point": (
        lambda: _with_initializer(qdq_gemm_model(WEIGHT, "m", bias=BIAS), "b_z", np.int32(1)),
        "the bias's zero point is not 0",
    ),
    "float_bias": (
        lambda: _float_bias(qdq_gemm_model(WEIGHT, "m", bias=BIAS)),
        "the bias is not dequantized from int32",
    ),
    "float_output_bias_scale": (
        # ORT runs this as QGemm with float output, which adds the integers whatever their scale
        # (unlike the model's own arithmetic): neither answer would be ORT's and the model's both.
        lambda: with_float_output(
            qdq_gemm_model(WEIGHT, "m", bias=BIAS, bias_scale=A_SCALE * np.float32(0.04))
        ),
        "the bias's scale is not x_scale * w_scale",
    ),
    "huge_bias": (
        lambda: qdq_gemm_model(WEIGHT, "m", bias=np.full(N, 2**31 - 2**10, np.int32)),
        "the bias is too large for an int32 accumulator",
    ),
    "scales_along_k": (
        lambda: _scales_along_k(qdq_gemm_model(WEIGHT, "m")),
        "quantized along an input axis",
    ),
}


@pytest.mark.parametrize("form", sorted(KEPT))
def test_other_forms_stay_as_they_are_with_the_reason(form):
    build, reason = KEPT[form]
    model = build()
    result = rewrite_model(model, min_sparsity=0.5)
    assert op_types(result.model) == op_types(model)
    (decision,) = result.decisions
    assert not decision.rewritten and reason in decision.reason, decision.reason
