import math

import numpy as np
import pytest
from onnx import helper

from tests.rewriter_testing import (
    assert_same_outputs,
    fused_gemm,
    matmul_then,
    op_types,
    rewrite,
)


def scalar(value):
    return np.array(value, dtype=np.float32)


def tanh_gelu(cube="Pow", kappa=0.044715):
    """Nodes of 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + kappa * x^3))), as torch.onnx writes them."""
    if cube == "Pow":
        cube_nodes = [helper.make_node("Pow", ["x", "three"], ["cube"])]
    else:
        cube_nodes = [
            helper.make_node("Mul", ["x", "x"], ["square"]),
            helper.make_node("Mul", ["square", "x"], ["cube"]),
        ]
    nodes = [
        *cube_nodes,
        helper.make_node("Mul", ["kappa", "cube"], ["kappa_cube"]),
        helper.make_node("Add", ["x", "kappa_cube"], ["inner"]),
        helper.make_node("Mul", ["beta", "inner"], ["scaled"]),
        helper.make_node("Tanh", ["scaled"], ["tanh"]),
        helper.make_node("Add", ["one", "tanh"], ["one_plus_tanh"]),
        helper.make_node("Mul", ["x", "one_plus_tanh"], ["p"]),
        helper.make_node("Mul", ["half", "p"], ["Y"]),
    ]
    constants = {
        "three": scalar(3.0),
        "kappa": scalar(kappa),
        "beta": scalar(math.sqrt(2.0 / math.pi)),
        "one": scalar(1.0),
        "half": scalar(0.5),
    }
    return nodes, constants


@pytest.mark.parametrize("cube", ["Pow", "Mul"])
def test_tanh_gelu_is_fused(cube):
    nodes, constants = tanh_gelu(cube)
    model = matmul_then(nodes, constants=constants)
    rewritten = rewrite(model)
    _, attrs = fused_gemm(rewritten)
    assert attrs["activation"] == "gelu_tanh"
    assert_same_outputs(model, rewritten)


def test_tanh_gelu_with_a_wrong_kappa_is_not_fused():
    nodes, constants = tanh_gelu(kappa=0.0447)
    model = matmul_then(nodes, constants=constants)
    rewritten = rewrite(model)
    assert "Tanh" in op_types(rewritten)
    assert_same_outputs(model, rewritten)
