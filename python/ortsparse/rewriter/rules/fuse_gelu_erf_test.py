import math

import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)


def scalar(value, rank=0):
    return np.full([1] * rank, value, dtype=np.float32)


def erf_gelu(scale_op="Div", half_on="x", sqrt2=math.sqrt(2.0), half_rank=0):
    """Nodes of 0.5 * x * (1 + erf(x / sqrt2)) with the 0.5 multiplying ``half_on``:
    "x", "one_plus_erf" or "product"."""
    scale = sqrt2 if scale_op == "Div" else 1.0 / sqrt2
    nodes = [
        helper.make_node(scale_op, ["x", "scale"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node(
            "Add", ["one", "erf"], ["one_plus_erf"]
        ),  # constant first, as some exporters do
    ]
    if half_on == "x":
        nodes += [
            helper.make_node("Mul", ["half", "x"], ["half_x"]),
            helper.make_node("Mul", ["half_x", "one_plus_erf"], ["Y"]),
        ]
    elif half_on == "one_plus_erf":
        nodes += [
            helper.make_node("Mul", ["one_plus_erf", "half"], ["h"]),
            helper.make_node("Mul", ["x", "h"], ["Y"]),
        ]
    else:
        nodes += [
            helper.make_node("Mul", ["x", "one_plus_erf"], ["p"]),
            helper.make_node("Mul", ["p", "half"], ["Y"]),
        ]
    constants = {"scale": scalar(scale), "one": scalar(1.0), "half": scalar(0.5, half_rank)}
    return nodes, constants


@pytest.mark.parametrize("half_on", ["x", "one_plus_erf", "product"])
@pytest.mark.parametrize("scale_op", ["Div", "Mul"])
def test_erf_gelu_is_fused(scale_op, half_on):
    nodes, constants = erf_gelu(scale_op, half_on)
    model = matmul_then(nodes, constants=constants)
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert attrs["activation"] == "gelu"
    assert rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0].fused == ["Gelu(erf)"]
    assert_same_outputs(model, rewritten)


def test_erf_gelu_with_an_inexact_sqrt2_is_not_fused():
    nodes, constants = erf_gelu(sqrt2=1.414)
    model = matmul_then(nodes, constants=constants)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Div", "Erf", "Add", "Mul", "Mul"]
    assert_same_outputs(model, rewritten)


def test_erf_gelu_whose_half_would_grow_the_rank_is_not_fused():
    nodes, constants = erf_gelu(half_rank=3)
    rewritten = rewrite(matmul_then(nodes, constants=constants, outputs={"Y": [1, "b", 8]}))
    assert op_types(rewritten) == ["SparseGemm", "Div", "Erf", "Add", "Mul", "Mul"]


def test_erf_gelu_is_not_fused_when_an_inner_result_is_read_elsewhere():
    nodes, constants = erf_gelu()
    model = matmul_then(nodes, constants=constants, outputs={"Y": ["b", 8], "erf": ["b", 8]})
    rewritten = rewrite(model)
    assert "Erf" in op_types(rewritten)
    assert_same_outputs(model, rewritten)
