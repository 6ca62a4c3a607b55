import numpy as np
import onnx
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    attributes,
    conv_weight,
    fused_conv,
    make_model,
    op_types,
    rewrite,
    sparse_nodes,
)

# A detection head's conv: 4 anchors of 5 predictions on a 6x7 grid.
ANCHORS, PREDICTIONS, C, H, W = 4, 5, 6, 6, 7
N = ANCHORS * PREDICTIONS


def detect_head(
    target: list[int], perm: list[int], after=(), outputs=None, batch="b", extra_inputs=None
) -> onnx.ModelProto:
    """Conv(bias) -> Reshape(target) -> Transpose(perm) "t" -> `after` nodes, whose output "Y"
    has t's shape; the outputs are "Y" (or "t" without `after`) unless given."""
    nodes = [
        helper.make_node("Conv", ["X", "W", "B"], ["y"], name="conv"),
        helper.make_node("Reshape", ["y", "target"], ["r"], name="reshape"),
        helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=perm),
        *after,
    ]
    constants = {
        "W": conv_weight(N, C, (1, 1), sparsity=0.7),
        "B": np.random.default_rng(1).standard_normal(N).astype(np.float32),
        "target": np.array(target, dtype=np.int64),
    }
    return make_model(
        nodes,
        {"X": [batch, C, H, W], **(extra_inputs or {})},
        outputs or {"Y" if after else "t": _transposed_shape(target, perm, batch)},
        constants,
    )


def _transposed_shape(target: list[int], perm: list[int], batch) -> list:
    """t's shape, with X's batch where the Reshape copies it (its -1s only follow a copied one)."""
    rest = list(target[1:])
    if -1 in rest:
        rest[rest.index(-1)] = N * H * W // -int(np.prod(rest))
    shape = [batch if target[0] == 0 else target[0], *rest]
    return [shape[axis] for axis in perm]


def test_five_dim_head_becomes_one_sparse_conv_with_its_sigmoid():
    # YOLOv5's Detect: view(bs, na, no, ny, nx).permute(0, 1, 3, 4, 2), then sigmoid.
    model = detect_head(
        [1, ANCHORS, PREDICTIONS, H, W],
        [0, 1, 3, 4, 2],
        after=[helper.make_node("Sigmoid", ["t"], ["Y"])],
        batch=1,
    )
    rewritten = rewrite(model)
    conv, attrs = fused_conv(rewritten)
    assert attrs["output_channel_groups"] == ANCHORS and attrs["activation"] == "sigmoid"
    assert list(conv.output) == ["Y"]
    decision = rewrite_model(model, min_sparsity=FORCE_REWRITE).decisions[0]
    assert decision.fused == ["Reshape+Transpose (channel groups last)", "Sigmoid"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize("target", [[0, ANCHORS, PREDICTIONS, -1], [0, ANCHORS, -1, H * W]])
def test_four_dim_head_keeps_a_reshape_that_moves_no_data(target):
    # The YOLOv5s-like builder's form, with a symbolic batch (run with 3 images).
    model = detect_head(target, [0, 1, 3, 2])
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Reshape"]
    (conv,) = sparse_nodes(rewritten, SparseConv)
    assert attributes(conv)["output_channel_groups"] == ANCHORS
    assert_same_outputs(model, rewritten, {"b": 3})


@pytest.mark.parametrize(
    "target, perm",
    [
        ([0, ANCHORS, PREDICTIONS, H, W], [0, 1, 4, 3, 2]),  # not channels last
        ([0, ANCHORS, PREDICTIONS, H * W], [0, 2, 1, 3]),
        ([0, PREDICTIONS * H, ANCHORS, W], [0, 1, 3, 2]),  # not a split of the channels
        ([0, ANCHORS * PREDICTIONS * H * W], [1, 0]),
        ([2, ANCHORS, PREDICTIONS, H * W], [0, 1, 3, 2]),  # X's batch is symbolic
    ],
    ids=["wrong-perm", "wrong-perm-4d", "rows-not-channels", "flattened", "fixed-batch"],
)
def test_other_reshapes_and_transposes_are_left_alone(target, perm):
    model = detect_head(target, perm)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Reshape", "Transpose"]
    (conv,) = sparse_nodes(rewritten, SparseConv)
    assert "output_channel_groups" not in attributes(conv)
    assert_same_outputs(model, rewritten, {"b": 2})


def test_not_fused_when_the_reshaped_tensor_is_read_elsewhere():
    model = detect_head(
        [0, ANCHORS, PREDICTIONS, H, W],
        [0, 1, 3, 4, 2],
        outputs={"t": ["b", ANCHORS, H, W, PREDICTIONS], "r": ["b", ANCHORS, PREDICTIONS, H, W]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Reshape", "Transpose"]
    assert_same_outputs(model, rewritten, {"b": 2})


def test_a_residual_add_after_the_new_layout_stays_an_add():
    # The kernel adds residuals channel-major; the fused op's channels are last.
    shape = ["b", ANCHORS, H, W, PREDICTIONS]
    model = detect_head(
        [0, ANCHORS, PREDICTIONS, H, W],
        [0, 1, 3, 4, 2],
        after=[helper.make_node("Add", ["t", "R"], ["Y"])],
        extra_inputs={"R": shape},
        outputs={"Y": shape},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "Add"]
    assert_same_outputs(model, rewritten, {"b": 2})
