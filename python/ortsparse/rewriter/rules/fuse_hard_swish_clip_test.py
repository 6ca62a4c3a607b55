import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    attributes,
    conv_then,
    depthwise_separable_block,
    fused_conv,
    matmul_then,
    op_types,
    rewrite,
    sparse_nodes,
)

CONSTANTS = {
    "three": np.float32(3),
    "zero": np.float32(0),
    "six": np.float32(6),
    "sixth": np.float32(1 / 6),
}


def paddle_hard_swish(form: str, three="three", six="six") -> list:
    """x * Clip(x + 3, 0, 6) / 6 in one of the orders exporters write it."""
    nodes = [
        helper.make_node("Add", ["x", three], ["p"]),
        helper.make_node("Clip", ["p", "zero", six], ["r"]),
    ]
    if form == "mul then div":
        nodes += [
            helper.make_node("Mul", ["x", "r"], ["m"]),
            helper.make_node("Div", ["m", six], ["Y"]),
        ]
    elif form == "mul then mul":
        nodes += [
            helper.make_node("Mul", ["r", "x"], ["m"]),
            helper.make_node("Mul", ["sixth", "m"], ["Y"]),
        ]
    elif form == "div then mul":
        nodes += [
            helper.make_node("Div", ["r", six], ["g"]),
            helper.make_node("Mul", ["g", "x"], ["Y"]),
        ]
    else:  # "mul by a sixth then mul"
        nodes += [
            helper.make_node("Mul", ["r", "sixth"], ["g"]),
            helper.make_node("Mul", ["x", "g"], ["Y"]),
        ]
    return nodes


@pytest.mark.parametrize(
    "form", ["mul then div", "mul then mul", "div then mul", "mul by a sixth then mul"]
)
def test_x_times_relu6_of_x_plus_3_over_6_after_a_conv_is_fused_as_hard_swish(form):
    model = conv_then(paddle_hard_swish(form), constants=CONSTANTS)
    rewritten = rewrite(model)
    conv, found = fused_conv(rewritten)
    assert found["activation"] == "hard_swish" and list(conv.output) == ["Y"]
    assert op_types(rewritten) == ["SparseConv"]
    decision = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0]
    assert decision.fused == ["HardSwish(Clip)"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "constants",
    [{"three": np.float32(2)}, {"six": np.float32(5)}],
    ids=["x + 2", "clipped at 5"],
)
def test_other_constants_are_not_fused(constants):
    model = conv_then(paddle_hard_swish("mul then div"), constants={**CONSTANTS, **constants})
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Add", "Clip", "Mul", "Div"]
    assert_same_outputs(model, rewritten)


def test_a_depthwise_conv_with_batch_norm_and_this_hard_swish_becomes_a_prologue():
    """PP-OCR's blocks: depthwise Conv, BatchNormalization, the four nodes, then the 1x1."""
    model = depthwise_separable_block(between=("BatchNormalization", "PaddleHardSwish"))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    (node,) = sparse_nodes(rewritten, SparseConv)
    assert attributes(node)["depthwise_activation"] == "hard_swish"
    assert_same_outputs(model, rewritten, {"b": 2})


def test_after_a_sparse_gemm_it_is_not_fused():
    # SparseGemm's kernel has no hard_swish; HardSwishAsHardSigmoid shortens the pattern.
    model = matmul_then(paddle_hard_swish("mul then div"), constants=CONSTANTS)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "HardSigmoid", "Mul"]
    assert_same_outputs(model, rewritten)
