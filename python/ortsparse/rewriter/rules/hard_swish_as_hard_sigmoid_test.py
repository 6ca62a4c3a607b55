from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CONV_HW,
    CONV_N,
    PADDLE_HARD_SWISH_CONSTANTS,
    assert_same_outputs,
    conv_then,
    op_types,
    paddle_hard_swish,
    rewrite,
)


def hard_swish_of_a_conv_output_read_elsewhere(form="mul then div"):
    """conv_then(x * Clip(x + 3, 0, 6) / 6) with x a graph output too, which keeps the SparseConv
    from fusing it."""
    model = conv_then(paddle_hard_swish(form), constants=PADDLE_HARD_SWISH_CONSTANTS)
    model.graph.output.append(
        helper.make_tensor_value_info("x", 1, ["b", CONV_N, CONV_HW, CONV_HW])
    )
    return model


def test_a_hard_swish_no_op_took_becomes_x_times_hard_sigmoid():
    for form in ("mul then div", "div then mul", "mul by a sixth then mul"):
        model = hard_swish_of_a_conv_output_read_elsewhere(form)
        rewritten = rewrite(model)
        assert op_types(rewritten) == ["SparseConv", "HardSigmoid", "Mul"], form
        assert_same_outputs(model, rewritten)


def test_nothing_changes_where_nothing_is_rewritten():
    model = hard_swish_of_a_conv_output_read_elsewhere()
    result = rewrite_model(model, min_sparsity=1.0)
    assert result.model.SerializeToString() == model.SerializeToString()


def test_an_intermediate_read_elsewhere_keeps_the_four_nodes():
    model = hard_swish_of_a_conv_output_read_elsewhere()
    model.graph.output.append(
        helper.make_tensor_value_info("r", 1, ["b", CONV_N, CONV_HW, CONV_HW])
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Add", "Clip", "Mul", "Div"]
    assert_same_outputs(model, rewritten)
