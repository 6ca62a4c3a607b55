import itertools

import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    assert_same_outputs,
    attributes,
    make_model,
    op_types,
    rewrite,
    sparse_gemms,
    sparse_weight,
)

M, K, N = 6, 32, 12
RNG = np.random.default_rng(7)

# C forms: what C is and the nodes the rewrite must leave after the SparseGemm.
CONSTANT_BIAS_FORMS = {
    "none": None,
    "vector": RNG.standard_normal([N]).astype(np.float32),
    "row": RNG.standard_normal([1, N]).astype(np.float32),
    "scalar": np.array(0.75, dtype=np.float32),
}
CONSTANT_ADD_FORMS = {
    "matrix": RNG.standard_normal([M, N]).astype(np.float32),
    "column": RNG.standard_normal([M, 1]).astype(np.float32),
}


def gemm_model(trans_a=0, trans_b=0, alpha=1.0, beta=1.0, c=None, c_input_shape=None):
    """Gemm(A, B[, C]); C is the constant ``c`` or, with ``c_input_shape``, a graph input."""
    weight = sparse_weight(K, N)
    initializers = {"B": weight.T.copy() if trans_b else weight}
    inputs = {"A": [K, M] if trans_a else [M, K]}
    gemm_inputs = ["A", "B"]
    if c is not None:
        initializers["C"] = c
        gemm_inputs.append("C")
    elif c_input_shape is not None:
        inputs["C"] = c_input_shape
        gemm_inputs.append("C")
    node = helper.make_node(
        "Gemm",
        gemm_inputs,
        ["Y"],
        name="fc",
        alpha=alpha,
        beta=beta,
        transA=trans_a,
        transB=trans_b,
    )
    return make_model([node], inputs, {"Y": [M, N]}, initializers)


@pytest.mark.parametrize(
    "trans_a,trans_b,alpha,beta",
    list(itertools.product([0, 1], [0, 1], [1.0, 0.5], [1.0, 2.0])),
    ids=str,
)
@pytest.mark.parametrize("c_form", CONSTANT_BIAS_FORMS)
def test_constant_bias_like_c_becomes_the_bias(c_form, trans_a, trans_b, alpha, beta):
    model = gemm_model(trans_a, trans_b, alpha, beta, CONSTANT_BIAS_FORMS[c_form])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Transpose"] * trans_a + ["SparseGemm"]
    (gemm,) = sparse_gemms(rewritten)
    assert len(gemm.input) == (4 if c_form == "none" else 5)
    assert (attributes(gemm)["K"], attributes(gemm)["N"]) == (K, N)
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize("beta", [1.0, -1.5])
@pytest.mark.parametrize("c_form", CONSTANT_ADD_FORMS)
def test_constant_c_of_other_shapes_stays_an_add(c_form, beta):
    model = gemm_model(trans_a=1, trans_b=1, alpha=2.0, beta=beta, c=CONSTANT_ADD_FORMS[c_form])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Transpose", "SparseGemm", "Add"]
    assert rewritten.graph.node[-1].output[0] == "Y"
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_non_constant_c_stays_an_add_with_beta_applied(beta):
    model = gemm_model(beta=beta, c_input_shape=[M, 1])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm"] + ["Mul"] * (beta != 1.0) + ["Add"]
    assert_same_outputs(model, rewritten)


def test_non_constant_c_of_the_output_shape_fuses_as_residual():
    model = gemm_model(beta=3.0, c_input_shape=[M, N])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Mul", "SparseGemm"]
    (gemm,) = sparse_gemms(rewritten)
    assert gemm.input[5] == rewritten.graph.node[0].output[0] and list(gemm.output) == ["Y"]
    assert_same_outputs(model, rewritten)


def test_beta_zero_drops_c():
    model = gemm_model(beta=0.0, c=CONSTANT_ADD_FORMS["matrix"])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm"] and len(sparse_gemms(rewritten)[0].input) == 4
    assert "C" not in {tensor.name for tensor in rewritten.graph.initializer}
    assert_same_outputs(model, rewritten)


def test_alpha_is_folded_into_the_sparsity_and_weight_shape_is_k_by_n():
    result = rewrite_model(gemm_model(trans_b=1, alpha=0.5), min_sparsity=0.5)
    (decision,) = result.decisions
    assert decision.rewritten and decision.op_type == "Gemm" and decision.weight_shape == (K, N)


def test_non_constant_b_is_left_alone():
    node = helper.make_node("Gemm", ["A", "B"], ["Y"], name="fc", transB=1)
    model = make_model([node], {"A": [M, K], "B": [N, K]}, {"Y": [M, N]})
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["Gemm"]
    (decision,) = result.decisions
    assert (
        not decision.rewritten
        and decision.weight_shape == (K, N)
        and "not a constant" in decision.reason
    )
