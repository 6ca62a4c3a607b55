import numpy as np
import pytest

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    PADDLE_HARD_SWISH_CONSTANTS,
    assert_same_outputs,
    attributes,
    conv_then,
    depthwise_separable_block,
    fused_conv,
    matmul_then,
    op_types,
    paddle_hard_swish,
    rewrite,
    sparse_nodes,
)


@pytest.mark.parametrize(
    "form", ["mul then div", "mul then mul", "div then mul", "mul by a sixth then mul"]
)
def test_x_times_relu6_of_x_plus_3_over_6_after_a_conv_is_fused_as_hard_swish(form):
    model = conv_then(paddle_hard_swish(form), constants=PADDLE_HARD_SWISH_CONSTANTS)
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
    model = conv_then(
        paddle_hard_swish("mul then div"), constants={**PADDLE_HARD_SWISH_CONSTANTS, **constants}
    )
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
    model = matmul_then(paddle_hard_swish("mul then div"), constants=PADDLE_HARD_SWISH_CONSTANTS)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "HardSigmoid", "Mul"]
    assert_same_outputs(model, rewritten)
