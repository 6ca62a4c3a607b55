import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    attributes,
    conv_weight,
    depthwise_separable_block,
    make_model,
    op_types,
    rewrite,
    sparse_nodes,
)

C, N, HW = 6, 8, 7
RNG = np.random.default_rng(11)


def affine_then_conv(
    affine=("Mul", "Add"), shapes=((C, 1, 1), (C, 1, 1)), kernel=1, pads=0, stride=1, bias=True
):
    """Y = Conv(affine(X)) with the affine's Mul and Add, in the order given, by constants of the
    shapes given, and a sparse kernel x kernel Conv."""
    constants = {"W": conv_weight(N, C, (kernel, kernel), sparsity=0.6)}
    nodes, tensor = [], "X"
    for index, (op_type, shape) in enumerate(zip(affine, shapes)):
        constants[f"c{index}"] = RNG.uniform(0.5, 1.5, shape).astype(np.float32)
        nodes.append(helper.make_node(op_type, [tensor, f"c{index}"], [f"a{index}"]))
        tensor = f"a{index}"
    conv_inputs = [tensor, "W"]
    if bias:
        constants["B"] = RNG.standard_normal(N).astype(np.float32)
        conv_inputs.append("B")
    nodes.append(
        helper.make_node(
            "Conv", conv_inputs, ["Y"], name="conv", pads=[pads] * 4, strides=[stride] * 2
        )
    )
    return make_model(nodes, {"X": ["b", C, HW, HW]}, {"Y": ["b", N, "h", "w"]}, constants)


@pytest.mark.parametrize(
    ("affine", "shapes"),
    [
        (("Mul", "Add"), ((C, 1, 1), (C, 1, 1))),
        (("Mul", "Add"), ((), (1, C, 1, 1))),
        (("Mul",), ((1,),)),
        (("Add",), ((C, 1, 1),)),
    ],
    ids=["per channel", "scalar scale", "scale alone", "shift alone"],
)
@pytest.mark.parametrize("bias", [True, False])
def test_an_affine_before_an_unpadded_conv_folds_into_it(affine, shapes, bias):
    model = affine_then_conv(affine, shapes, bias=bias)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    (node,) = sparse_nodes(rewritten, SparseConv)
    assert node.input[0] == "X"
    decision = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0]
    assert decision.fused == [f"affine before it ({', '.join(affine)})"]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_every_tap_of_an_unpadded_3x3_reads_the_affine_values():
    model = affine_then_conv(kernel=3, stride=2)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_a_padded_conv_keeps_the_affine():
    """Its padding reads zeros where the affine would have given the shift."""
    model = affine_then_conv(kernel=3, pads=1)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Mul", "Add", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_an_add_before_the_mul_is_left():
    """X = (x + b) a: only the Mul is folded."""
    model = affine_then_conv(("Add", "Mul"))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Add", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})


@pytest.mark.parametrize("shape", [(1, 1, HW), (C, HW, HW)], ids=["along the width", "per pixel"])
def test_constants_that_do_not_run_along_the_channels_are_left(shape):
    model = affine_then_conv(("Mul",), (shape,))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Mul", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_an_affine_that_something_else_reads_is_left():
    model = affine_then_conv()
    model.graph.output.append(helper.make_tensor_value_info("a1", 1, ["b", C, HW, HW]))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Mul", "Add", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_a_depthwise_block_with_an_affine_after_its_activation_becomes_one_op():
    """PP-OCRv4's recognizer blocks: depthwise Conv, its normalization as a Mul and an Add, the
    hard-swish, a learnable scale and bias, then the sparse 1x1."""
    between = ("ChannelMul", "ChannelAdd", "PaddleHardSwish", "ChannelMul", "ChannelAdd")
    model = depthwise_separable_block(between=between)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    (node,) = sparse_nodes(rewritten, SparseConv)
    assert attributes(node)["depthwise_activation"] == "hard_swish"
    assert_same_outputs(model, rewritten, {"b": 2})


def test_an_affine_that_broadcasts_its_input_to_more_channels_is_left():
    model = affine_then_conv(("Mul",))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Mul", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})
