import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CONV_HW,
    CONV_N,
    assert_same_outputs,
    conv_then,
    op_types,
    rewrite,
)


def residual_squeeze_excite(x_first=True, gate_first=False, gate="pooled", extra_output=False):
    """conv_then(x + x * Sigmoid(GlobalAveragePool(x))): the gate per image and channel, or the
    gate as big as x where ``gate`` is "full"; with ``extra_output``, x * gate is read too."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["pooled"])] if gate == "pooled" else []
    nodes.append(helper.make_node("Sigmoid", ["pooled" if gate == "pooled" else "x"], ["g"]))
    nodes.append(helper.make_node("Mul", ["g", "x"] if gate_first else ["x", "g"], ["m"]))
    nodes.append(helper.make_node("Add", ["x", "m"] if x_first else ["m", "x"], ["Y"]))
    shape = ["b", CONV_N, CONV_HW, CONV_HW]
    outputs = {"Y": shape, **({"m": shape} if extra_output else {})}
    return conv_then(nodes, outputs=outputs)


@pytest.mark.parametrize("x_first", [True, False])
@pytest.mark.parametrize("gate_first", [True, False])
def test_x_plus_x_times_a_channel_gate_becomes_one_mul(x_first, gate_first):
    model = residual_squeeze_excite(x_first, gate_first)
    rewritten = rewrite(model)
    assert sorted(op_types(rewritten)) == sorted(
        ["SparseConv", "GlobalAveragePool", "Sigmoid", "Add", "Mul"]
    )
    (mul,) = [node for node in rewritten.graph.node if node.op_type == "Mul"]
    assert mul.input[0] == "x" and list(mul.output) == ["Y"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "options", [{"gate": "full"}, {"extra_output": True}], ids=["gate-as-big-as-x", "product-read"]
)
def test_the_two_nodes_stay_where_one_mul_would_not_do(options):
    model = residual_squeeze_excite(**options)
    rewritten = rewrite(model)
    assert op_types(rewritten)[-2:] == ["Mul", "Add"]
    assert_same_outputs(model, rewritten)


def test_nothing_changes_where_nothing_is_rewritten():
    model = residual_squeeze_excite()
    result = rewrite_model(model, min_sparsity=1.0)
    assert result.model.SerializeToString() == model.SerializeToString()
