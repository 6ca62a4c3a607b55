import numpy as np
import pytest
from onnx import numpy_helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    assert_same_outputs,
    attributes,
    depthwise_separable_block,
    op_types,
    rewrite,
    sparse_nodes,
)

LABEL = "depthwise Conv before it"


def prologue_of(model):
    (node,) = sparse_nodes(model, SparseConv)
    return node, attributes(node)


@pytest.mark.parametrize(
    ("between", "activation"),
    [
        ((), "none"),
        (("Relu",), "relu"),
        (("BatchNormalization",), "none"),
        (("BatchNormalization", "HardSwish"), "hard_swish"),
        (("Clip6",), "clip"),
        (("BatchNormalization", "XHardSigmoid"), "hard_swish"),
        (("XSigmoid",), "silu"),
        (("ChannelMul", "ChannelAdd", "PaddleHardSwish"), "hard_swish"),
        (("ChannelAdd", "Relu"), "relu"),
    ],
)
def test_a_depthwise_conv_with_its_normalization_and_activation_becomes_the_prologue(
    between, activation
):
    model = depthwise_separable_block(between)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    node, found = prologue_of(rewritten)
    assert node.input[0] == "X"
    assert found["depthwise_kernel_shape"] == [3, 3] and found["depthwise_pads"] == [1, 1, 1, 1]
    assert found["depthwise_activation"] == activation
    assert found["activation"] == "relu"
    assert_same_outputs(model, rewritten, {"b": 2})


@pytest.mark.parametrize(
    "window",
    [
        {"kernel": 5},
        {"stride": 2},
        {"kernel": 3, "stride": 2, "pads": [0, 1, 1, 0]},
        {"dilation": 2},
        {"auto_pad": "SAME_UPPER", "stride": 2},
        {"bias": False},
        {"height": 1, "width": 37},
        {"height": 40, "width": 3},
        {"height": 90, "width": 200, "stride": 2, "kernel": 5},
        # Stride 3: strips of the input planes packed in L1, a few rows of output each.
        {"height": 90, "width": 200, "stride": 3, "kernel": 5},
        {"stride": 3, "pads": [0, 2, 1, 1]},
    ],
)
def test_every_window_matches_ort(window):
    model = depthwise_separable_block(**window)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 3})


def test_large_images_are_computed_in_bands_and_match_ort(capfd, monkeypatch):
    """Planes past the op's banding threshold are written a band of rows at a time."""
    monkeypatch.setenv("ORTSPARSE_VERBOSE", "1")
    model = depthwise_separable_block(height=256, width=257)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 1})
    plans = capfd.readouterr().err
    assert "after a depthwise 3x3 convolution" in plans
    # Only compiled code packs bands (the tile kernels read the whole image's planes).
    assert ": compiled, " not in plans or "planes in bands" in plans


def test_a_depthwise_output_read_elsewhere_stays_with_ort():
    rewritten = rewrite(depthwise_separable_block(extra_reader=True))
    assert "Conv" in op_types(rewritten)
    _, found = prologue_of(rewritten)
    assert "depthwise_kernel_shape" not in found


def test_a_strided_pointwise_conv_takes_no_prologue():
    rewritten = rewrite(depthwise_separable_block(pointwise_stride=2))
    _, found = prologue_of(rewritten)
    assert "depthwise_kernel_shape" not in found
    assert op_types(rewritten).count("Conv") == 1


def test_the_report_names_the_fused_depthwise_conv():
    result = rewrite_model(depthwise_separable_block(), min_sparsity=0.5)
    (decision,) = [d for d in result.decisions if d.rewritten]
    assert any(step.startswith(LABEL) and "3x3 Conv dw" in step for step in decision.fused)


def test_a_mul_that_does_not_run_along_the_channels_stops_the_prologue():
    model = depthwise_separable_block(between=("ChannelMul",))
    (factors,) = [tensor for tensor in model.graph.initializer if tensor.name == "d1_by"]
    factors.CopyFrom(numpy_helper.from_array(np.full((1, 1, 11), 0.5, np.float32), "d1_by"))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["Conv", "Mul", "SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 2})
