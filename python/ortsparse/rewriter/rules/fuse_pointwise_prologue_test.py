import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter.rules.fuse_pointwise_prologue import fuse_pointwise_prologues
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    assert_same_outputs,
    attributes,
    op_types,
    rewrite,
    sparse_conv_chain,
    sparse_nodes,
)

LABEL = "sparse 1x1 SparseConv before it"


def fused(model):
    """The rewrite of ``model`` with every pair fused, and what was fused."""
    rewritten = rewrite(model)
    names = {node.name for node in sparse_nodes(rewritten, SparseConv)}
    return fuse_pointwise_prologues(rewritten, names)


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"kernel": 1},
        {"stride": 2},
        {"kernel": 3, "stride": 2, "pads": [0, 1, 1, 0]},
        {"kernel": 5, "dilation": 2},
        {"residual": True},
        {"residual": "X", "channels": (12, 8, 12)},
        {"block": 4, "channels": (12, 16, 8)},
        {"first_activation": "Sigmoid"},
        {"first_activation": None},
        {"height": 1, "width": 37, "kernel": 1},
        # Output rows whose band reads padding only.
        {"height": 40, "width": 90, "kernel": 1, "pads": [5, 0, 6, 1]},
        {"height": 3, "width": 2},
        {"height": 40, "width": 3},
        # Bands of a few rows of a large image, the later bands' halos recomputed.
        {"height": 96, "width": 90, "channels": (32, 64, 48)},
        {"height": 96, "width": 90, "channels": (32, 64, 48), "stride": 2, "block": 4},
    ],
)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_chain_in_one_op_matches_ort(shape, batch, threads):
    model = sparse_conv_chain(**shape)
    rewritten, found = fused(model)
    assert op_types(rewritten) == ["SparseConv"]
    (node,) = sparse_nodes(rewritten, SparseConv)
    assert node.input[0] == "X"
    assert (
        attributes(node)["pointwise_K"]
        == model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    )
    assert found == [("conv_SparseConv", f"{LABEL} (reduce_SparseConv)")]
    assert_same_outputs(model, rewritten, {"b": batch}, threads)


def test_the_op_reports_its_bands(capfd, monkeypatch):
    monkeypatch.setenv("ORTSPARSE_VERBOSE", "1")
    model = sparse_conv_chain(height=40, width=30)
    rewritten, _ = fused(model)
    assert_same_outputs(model, rewritten, {"b": 1})
    assert "after a sparse 1x1 convolution of 12 channels, in bands of" in capfd.readouterr().err


def test_an_output_read_elsewhere_is_not_fused():
    rewritten, found = fused(sparse_conv_chain(pointwise_reader=True))
    assert found == []
    assert len(sparse_nodes(rewritten, SparseConv)) == 2


def test_a_first_conv_with_an_output_affine_is_not_fused():
    # The prologue has no output affine: fused, it would lose the first conv's.
    model = sparse_conv_chain()
    relu = next(
        node for node in model.graph.node if node.op_type == "Relu" and node.input[0] == "p"
    )
    relu.output[0] = "relu"
    index = list(model.graph.node).index(relu)
    model.graph.node.insert(index + 1, helper.make_node("Mul", ["relu", "s"], ["pa"]))
    model.graph.initializer.append(
        numpy_helper.from_array(np.full([1, 8, 1, 1], 1.5, np.float32), "s")
    )
    rewritten, found = fused(model)
    assert found == []
    reduce = next(
        node for node in sparse_nodes(rewritten, SparseConv) if node.name == "reduce_SparseConv"
    )
    assert "output_scale" in attributes(reduce)


def test_only_the_named_consumers_are_fused():
    rewritten = rewrite(sparse_conv_chain())
    same, found = fuse_pointwise_prologues(rewritten, {"reduce_SparseConv"})
    assert found == [] and op_types(same) == op_types(rewritten)


def test_a_fused_node_reads_back_as_it_was_written():
    rewritten, _ = fused(sparse_conv_chain(first_activation="Sigmoid"))
    (node,) = sparse_nodes(rewritten, SparseConv)
    op = SparseConv.from_node(node)
    assert op.pointwise.activation.name == "sigmoid"
    assert SparseConv.from_node(op.to_node()).pointwise.k == 12
