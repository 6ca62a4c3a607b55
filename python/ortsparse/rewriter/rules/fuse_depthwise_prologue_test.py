import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter.sparse_conv import SparseConv
from tests.rewriter_testing import (
    assert_same_outputs,
    attributes,
    conv_weight,
    make_model,
    op_types,
    rewrite,
    sparse_nodes,
)

C, N, HW = 8, 16, 11
LABEL = "depthwise Conv before it"


def depthwise_block(
    between=("BatchNormalization", "HardSwish"),
    kernel=3,
    stride=1,
    dilation=1,
    pads=None,
    auto_pad=None,
    bias=True,
    pointwise_stride=1,
    extra_reader=False,
    height=HW,
    width=HW,
):
    """Y = Relu(Conv1x1(between(DepthwiseConv(X)))): X ["b", C, height, width], a dense
    depthwise kernel x kernel Conv and a sparse 1x1 Conv of N channels. With ``extra_reader``,
    the depthwise output is a graph output too."""
    rng = np.random.default_rng(7)
    constants = {
        "Wd": rng.standard_normal((C, 1, kernel, kernel)).astype(np.float32),
        "Wp": conv_weight(N, C, (1, 1), sparsity=0.6),
    }
    dw_inputs = ["X", "Wd"]
    if bias:
        constants["Bd"] = rng.standard_normal(C).astype(np.float32)
        dw_inputs.append("Bd")
    window = {"kernel_shape": [kernel, kernel], "strides": [stride] * 2}
    window["dilations"] = [dilation] * 2
    if auto_pad is not None:
        window["auto_pad"] = auto_pad
    else:
        window["pads"] = pads if pads is not None else [kernel // 2 * dilation] * 4
    nodes = [helper.make_node("Conv", dw_inputs, ["d0"], name="dw", group=C, **window)]
    tensor = "d0"
    for index, op_type in enumerate(between):
        out = f"d{index + 1}"
        if op_type == "BatchNormalization":
            for name, value in {
                "scale": rng.uniform(0.5, 1.5, C),
                "shift": rng.standard_normal(C),
                "mean": rng.standard_normal(C),
                "var": rng.uniform(0.5, 2.0, C),
            }.items():
                constants[name] = value.astype(np.float32)
            nodes.append(
                helper.make_node(op_type, [tensor, "scale", "shift", "mean", "var"], [out])
            )
        elif op_type == "Clip6":
            constants["zero"], constants["six"] = np.float32(0), np.float32(6)
            nodes.append(helper.make_node("Clip", [tensor, "zero", "six"], [out]))
        else:
            nodes.append(helper.make_node(op_type, [tensor], [out]))
        tensor = out
    nodes += [
        helper.make_node(
            "Conv",
            [tensor, "Wp"],
            ["p"],
            name="pw",
            strides=[pointwise_stride] * 2,
            kernel_shape=[1, 1],
        ),
        helper.make_node("Relu", ["p"], ["Y"]),
    ]
    outputs = {"Y": ["b", N, "oh", "ow"]}
    if extra_reader:
        outputs[tensor] = ["b", C, "oh", "ow"]
    return make_model(nodes, {"X": ["b", C, height, width]}, outputs, constants)


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
    ],
)
def test_a_depthwise_conv_with_its_normalization_and_activation_becomes_the_prologue(
    between, activation
):
    model = depthwise_block(between)
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
    ],
)
def test_every_window_matches_ort(window):
    model = depthwise_block(**window)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 3})


def test_large_images_are_computed_in_bands_and_match_ort(capfd, monkeypatch):
    """Planes past the op's banding threshold are written a band of rows at a time."""
    monkeypatch.setenv("ORTSPARSE_VERBOSE", "1")
    model = depthwise_block(height=256, width=257)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv"]
    assert_same_outputs(model, rewritten, {"b": 1})
    plans = capfd.readouterr().err
    assert "after a depthwise 3x3 convolution" in plans
    # Only compiled code packs bands (the tile kernels read the whole image's planes).
    assert ": compiled, " not in plans or "planes in bands" in plans


def test_a_depthwise_output_read_elsewhere_stays_with_ort():
    rewritten = rewrite(depthwise_block(extra_reader=True))
    assert "Conv" in op_types(rewritten)
    _, found = prologue_of(rewritten)
    assert "depthwise_kernel_shape" not in found


def test_a_strided_pointwise_conv_takes_no_prologue():
    rewritten = rewrite(depthwise_block(pointwise_stride=2))
    _, found = prologue_of(rewritten)
    assert "depthwise_kernel_shape" not in found
    assert op_types(rewritten).count("Conv") == 1


def test_the_report_names_the_fused_depthwise_conv():
    from ortsparse.rewriter import rewrite_model

    result = rewrite_model(depthwise_block(), min_sparsity=0.5)
    (decision,) = [d for d in result.decisions if d.rewritten]
    assert any(step.startswith(LABEL) and "3x3 Conv dw" in step for step in decision.fused)
