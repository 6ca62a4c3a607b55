# Where ORT fuses the QDQ pattern into QLinearMatMul (per-tensor weight scales), outputs must be
# identical to the exact reference's (tests/int8_reference.py), and to ORT's where ORT is exact on
# this CPU; with per-column scales ORT computes the product in float, so they may differ by
# one quantization step where float rounding differs from the exact int32 sum (tested below).
# Where the product stays float, ORT multiplies the dequantized operands in float: outputs agree to
# float rounding (assert_close_float_outputs).
import numpy as np
import pytest
from onnx import helper

import ortsparse
from ortsparse.rewriter import rewrite_model
from tests.int8_reference import expected_outputs
from tests.quantized_testing import (
    assert_close_float_outputs,
    assert_identical_outputs,
    qdq_matmul_model,
    quantized_inputs,
    sparse_int8_weight,
    with_float_output,
)
from tests.rewriter_testing import op_types, rewrite, run

K, N = 64, 48


@pytest.mark.parametrize("activation", ["u8", "s8"])
def test_qdq_matmul_becomes_one_sparse_qgemm_with_identical_outputs(activation):
    model = qdq_matmul_model(sparse_int8_weight(K, N, quads=True), ["m", K], activation)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQGemm"]
    assert list(rewritten.graph.node[0].input[:1]) == ["A"]
    assert list(rewritten.graph.node[0].output) == ["Y"]
    for m in (1, 70):
        assert_identical_outputs(model, rewritten, {"m": m})


def test_per_column_scales_are_within_one_step_of_orts_float_product():
    scales = np.linspace(0.005, 0.05, N).astype(np.float32)
    model = qdq_matmul_model(sparse_int8_weight(K, N), ["m", K], "u8", w_scale=scales)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQGemm"]
    inputs = quantized_inputs(model, {"m": 40})
    (want,) = expected_outputs(model, inputs)
    (got,) = run(rewritten, inputs, ortsparse.library_path())
    assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 1


def test_dequantized_activation_read_elsewhere_stays():
    model = qdq_matmul_model(sparse_int8_weight(K, N), ["m", K])
    model.graph.node.append(helper.make_node("Relu", ["a"], ["a_relu"]))
    model.graph.output.append(helper.make_tensor_value_info("a_relu", 1, ["m", K]))
    rewritten = rewrite(model)
    assert sorted(op_types(rewritten)) == ["DequantizeLinear", "Relu", "SparseQGemm"]
    assert_identical_outputs(model, rewritten, {"m": 5})


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("per_column", [False, True])
def test_float_product_becomes_one_float_sparse_qgemm(activation, per_column):
    scales = np.linspace(0.005, 0.05, N).astype(np.float32) if per_column else np.float32(0.02)
    weight = sparse_int8_weight(K, N, quads=True)
    model = with_float_output(qdq_matmul_model(weight, ["m", K], activation, w_scale=scales))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQGemm"]
    (node,) = rewritten.graph.node
    assert (node.input[0], list(node.output)) == ("A", ["Y"])
    for m in (1, 70):
        assert_close_float_outputs(model, rewritten, {"m": m})


def test_weight_quantized_along_k_is_kept():
    scales = np.full(K, 0.02, np.float32)
    model = qdq_matmul_model(sparse_int8_weight(K, N), ["m", K], w_scale=scales)
    for attribute in model.graph.node[1].attribute:
        attribute.i = 0
    result = rewrite_model(model, min_sparsity=0.5)
    (decision,) = result.decisions
    assert not decision.rewritten and "along an input axis" in decision.reason
