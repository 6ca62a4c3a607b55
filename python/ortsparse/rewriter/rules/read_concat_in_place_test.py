import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    conv_weight,
    make_model,
    op_types,
    rewrite,
    sparse_nodes,
)

H, W = 6, 7
LABEL = "Concat (its inputs read in place)"


def joined_then_convs(part_channels=(4, 6), readers=1, axis=1, extra_outputs=None, dense=False):
    """Relu of each part, Concat of them on ``axis``, then ``readers`` convs of the Concat: a 1x1,
    then 3x3 ones, padded, which the rewriter does not merge with it (with ``dense``, the second
    conv's weight has no zeros, so it stays a Conv)."""
    inputs = {f"x{p}": ["b", c, H, W] for p, c in enumerate(part_channels)}
    nodes = [helper.make_node("Relu", [f"x{p}"], [f"r{p}"]) for p in range(len(part_channels))]
    nodes.append(
        helper.make_node("Concat", [f"r{p}" for p in range(len(part_channels))], ["j"], axis=axis)
    )
    joined = sum(part_channels) if axis == 1 else part_channels[0]
    constants, outputs = {}, {}
    for r in range(readers):
        sparsity = 0.0 if dense and r == 1 else 0.7
        kernel = 1 if r == 0 else 3
        constants[f"W{r}"] = conv_weight(5, joined, (kernel, kernel), sparsity=sparsity, seed=r)
        window = dict(kernel_shape=[kernel] * 2, pads=[kernel // 2] * 4)
        nodes.append(helper.make_node("Conv", ["j", f"W{r}"], [f"Y{r}"], name=f"conv{r}", **window))
        outputs[f"Y{r}"] = ["b", 5, H * (len(part_channels) if axis == 2 else 1), W]
    return make_model(nodes, inputs, {**outputs, **(extra_outputs or {})}, constants)


def assert_reads_parts(conv_node, parts):
    op = SparseConv.from_node(conv_node)
    assert (op.x, *op.x_parts) == tuple(parts)


@pytest.mark.parametrize("part_channels", [(4, 6), (3, 1, 2, 5)], ids=["two", "four"])
def test_every_reader_takes_the_parts(part_channels):
    model = joined_then_convs(part_channels, readers=2)
    rewritten = rewrite(model)
    assert "Concat" not in op_types(rewritten)
    parts = [f"r{p}" for p in range(len(part_channels))]
    for conv in sparse_nodes(rewritten, SparseConv):
        assert_reads_parts(conv, parts)
        assert list(conv.input[4:6]) == ["", ""]  # no bias, no residual: left empty before parts
    decisions = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions
    assert [d.fused for d in decisions] == [[LABEL], [LABEL]]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_parts_follow_a_bias_and_an_empty_residual_slot():
    # Relu(conv(j) + bias): the parts are inputs 6 on, after the bias and a residual left empty.
    inputs = {"x0": ["b", 4, H, W], "x1": ["b", 6, H, W]}
    nodes = [
        helper.make_node("Concat", ["x0", "x1"], ["j"], axis=1),
        helper.make_node("Conv", ["j", "W", "B"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["Y"]),
    ]
    constants = {"W": conv_weight(5, 10, (1, 1), 0.7), "B": np.ones(5, np.float32)}
    model = make_model(nodes, inputs, {"Y": ["b", 5, H, W]}, constants)
    rewritten = rewrite(model)
    (conv,) = sparse_nodes(rewritten, SparseConv)
    assert op_types(rewritten) == ["SparseConv"]
    assert conv.input[4] != "" and conv.input[5] == "" and list(conv.input[6:]) == ["x1"]
    assert_same_outputs(model, rewritten, {"b": 2})


@pytest.mark.parametrize("conv_input", ["z", "j"], ids=["residual-only", "x-and-residual"])
def test_not_when_the_reader_adds_it_as_residual(conv_input):
    # conv(conv_input) + j: the residual needs the joined tensor, so the Concat stays.
    inputs = {"x0": ["b", 4, H, W], "x1": ["b", 1, H, W], "z": ["b", 5, H, W]}
    nodes = [
        helper.make_node("Concat", ["x0", "x1"], ["j"], axis=1),
        helper.make_node("Conv", [conv_input, "W"], ["c"], name="conv"),
        helper.make_node("Add", ["c", "j"], ["Y"]),
    ]
    model = make_model(nodes, inputs, {"Y": ["b", 5, H, W]}, {"W": conv_weight(5, 5, (1, 1), 0.7)})
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Concat", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})


@pytest.mark.parametrize(
    "case, arguments",
    [
        ("read elsewhere", dict(extra_outputs={"j": ["b", 10, H, W]})),
        ("a reader kept dense", dict(readers=2, dense=True)),
        ("five parts", dict(part_channels=(1, 2, 3, 4, 5))),
        ("another axis", dict(part_channels=(4, 4), axis=2)),
    ],
)
def test_concat_kept(case, arguments):
    model = joined_then_convs(**arguments)
    rewritten = rewrite(model)
    assert "Concat" in op_types(rewritten), case
    assert all(not SparseConv.from_node(n).x_parts for n in sparse_nodes(rewritten, SparseConv))
    assert_same_outputs(model, rewritten, {"b": 2})
