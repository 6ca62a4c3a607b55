import numpy as np
import onnx
import pytest
from onnx import helper

from ortsparse import library_path
from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_gemm import SparseGemm
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    attributes,
    conv_weight,
    make_model,
    op_types,
    random_inputs,
    rewrite,
    run,
    sparse_nodes,
    sparse_weight,
)

C, H, W = 4, 5, 6
ROWS = 3 * H * W  # each conv's 3 channels of H x W, as rows of one prediction


def two_heads(final: str = "Sigmoid", extra_outputs=None, second_source: str = "conv"):
    """Two 1x1 convs, each reshaped to [b, rows, 1]; Concat of both on the rows; `final` of it.
    With second_source "input", the Concat's second input is a graph input instead."""
    nodes = [
        helper.make_node("Conv", ["X", "W1"], ["y1"], name="conv1"),
        helper.make_node("Reshape", ["y1", "rows"], ["r1"]),
    ]
    inputs = {"X": ["b", C, H, W]}
    if second_source == "conv":
        nodes += [
            helper.make_node("Conv", ["X", "W2"], ["y2"], name="conv2"),
            helper.make_node("Reshape", ["y2", "rows"], ["r2"]),
        ]
    else:
        inputs["r2"] = ["b", ROWS, 1]
    nodes += [
        helper.make_node("Concat", ["r1", "r2"], ["joined"], axis=1),
        helper.make_node(final, ["joined"], ["Y"]),
    ]
    constants = {
        "W1": conv_weight(3, C, (1, 1), sparsity=0.7, seed=1),
        "W2": conv_weight(3, C, (1, 1), sparsity=0.7, seed=2),
        "rows": np.array([0, -1, 1], dtype=np.int64),
    }
    outputs = {"Y": ["b", 2 * ROWS, 1], **(extra_outputs or {})}
    return make_model(nodes, inputs, outputs, constants)


@pytest.mark.parametrize("final, activation", [("Sigmoid", "sigmoid"), ("Relu", "relu")])
def test_activation_of_a_concat_of_reshaped_convs_moves_into_both(final, activation):
    model = two_heads(final)
    rewritten = rewrite(model)
    # Both convs read X alike, so they end up merged into one with two outputs.
    assert op_types(rewritten) == ["SparseConv", "Reshape", "Reshape", "Concat"]
    (conv,) = sparse_nodes(rewritten, SparseConv)
    assert attributes(conv)["activation"] == activation
    assert rewritten.graph.node[-1].output[0] == "Y"
    decisions = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions
    assert all(d.fused[0] == f"{final} (through Concat/Reshape/Transpose)" for d in decisions)
    assert_same_outputs(model, rewritten, {"b": 2})


def test_not_hoisted_when_a_moved_tensor_is_read_elsewhere():
    model = two_heads(extra_outputs={"r1": ["b", ROWS, 1]})
    rewritten = rewrite(model)
    assert op_types(rewritten)[-1] == "Sigmoid"
    assert_same_outputs(model, rewritten, {"b": 2})


def test_not_hoisted_when_part_of_the_concat_is_no_sparse_op():
    model = two_heads(second_source="input")
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Reshape", "Concat", "Sigmoid"]
    assert attributes(sparse_nodes(rewritten, SparseConv)[0])["activation"] == "none"
    assert_same_outputs(model, rewritten, {"b": 2})


def test_not_hoisted_into_an_op_that_has_an_activation():
    model = make_model(
        [
            helper.make_node("MatMul", ["A", "W"], ["x"]),
            helper.make_node("Relu", ["x"], ["relu"]),
            helper.make_node("Transpose", ["relu"], ["t"], perm=[1, 0]),
            helper.make_node("Sigmoid", ["t"], ["Y"]),
        ],
        {"A": ["b", 16]},
        {"Y": [8, "b"]},
        {"W": sparse_weight(16, 8, sparsity=0.7)},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Transpose", "Sigmoid"]
    assert attributes(sparse_nodes(rewritten, SparseGemm)[0])["activation"] == "relu"
    assert_same_outputs(model, rewritten, {"b": 3})


def test_a_fused_residual_joins_the_sum_before_the_hoisted_activation():
    model = make_model(
        [
            helper.make_node("MatMul", ["A", "W"], ["x"]),
            helper.make_node("Add", ["x", "R"], ["s"]),
            helper.make_node("Transpose", ["s"], ["t"], perm=[1, 0]),
            helper.make_node("Sigmoid", ["t"], ["Y"]),
        ],
        {"A": [5, 16], "R": [5, 8]},
        {"Y": [8, 5]},
        {"W": sparse_weight(16, 8, sparsity=0.7)},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "Transpose"]
    gemm_attributes = attributes(sparse_nodes(rewritten, SparseGemm)[0])
    assert gemm_attributes["activation"] == "sigmoid"
    assert gemm_attributes["residual_before_activation"] == 1
    assert_same_outputs(model, rewritten)


def test_sparse_ops_of_an_earlier_rewrite_are_left_alone():
    # A Sigmoid added after a rewritten model's SparseConv + Reshape: a second rewrite did not
    # make that op, has no decision to record for it, and leaves the Sigmoid as it is.
    once = rewrite(two_heads(final="Identity"))
    once.graph.node.append(helper.make_node("Sigmoid", ["Y"], ["activated"]))
    once.graph.output.append(
        helper.make_tensor_value_info("activated", onnx.TensorProto.FLOAT, ["b", 2 * ROWS, 1])
    )
    twice = rewrite(once)
    assert op_types(twice) == op_types(once)
    inputs = random_inputs(once, {"b": 2})
    for want, got in zip(run(once, inputs, library_path()), run(twice, inputs, library_path())):
        np.testing.assert_array_equal(got, want)
