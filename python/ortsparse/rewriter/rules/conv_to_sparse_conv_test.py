import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.graph import Graph
from ortsparse.rewriter.packing import PackedWeight, unpack
from ortsparse.rewriter.policy import Verdict
from ortsparse.rewriter.rules.conv_to_sparse_conv import ConvToSparseConv
from tests.rewriter_testing import (
    FORCE_REWRITE,
    assert_same_outputs,
    conv_weight,
    fused_conv,
    make_model,
    op_types,
    rewrite,
)

C, N = 4, 6
RNG = np.random.default_rng(5)


def conv_model(x_shape, kernel=(3, 3), bias=False, weight=None, **attributes):
    weight = conv_weight(N, x_shape[1], kernel) if weight is None else weight
    constants = {"W": weight}
    if bias:
        constants["B"] = RNG.standard_normal(N).astype(np.float32)
    conv = helper.make_node("Conv", ["X", *constants], ["Y"], name="/stem/Conv", **attributes)
    return make_model([conv], {"X": x_shape}, {"Y": any_shape(len(x_shape))}, constants)


def any_shape(rank):
    """Symbols for every dim, left to shape inference."""
    return [f"y{axis}" for axis in range(rank)]


def initializer(model, name):
    return next(
        numpy_helper.to_array(tensor) for tensor in model.graph.initializer if tensor.name == name
    )


GEOMETRIES = {
    "1x1": dict(kernel=(1, 1)),
    "3x3 padded": dict(kernel=(3, 3), pads=[1, 1, 1, 1]),
    "5x3 strided": dict(kernel=(5, 3), strides=[2, 1]),
    "dilated": dict(kernel=(3, 3), dilations=[2, 2], pads=[2, 2, 2, 2]),
    "asymmetric pads": dict(kernel=(3, 2), pads=[0, 1, 2, 1], strides=[2, 3]),
}


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_conv_becomes_sparse_conv_with_the_weight_packed_as_its_matrix_view(geometry, bias):
    geometry = dict(geometry)
    kernel = geometry.pop("kernel")
    weight = conv_weight(N, C, kernel)
    model = conv_model(["b", C, 11, 9], kernel, bias, weight, **geometry)
    rewritten = rewrite(model)

    conv, attrs = fused_conv(rewritten)
    k = C * kernel[0] * kernel[1]
    assert conv.input[0] == "X" and list(conv.output) == ["Y"]
    assert conv.name.startswith("/stem/Conv") and conv.domain == "ortsparse"
    assert (attrs["C"], attrs["N"], attrs["K"], attrs["group"]) == (C, N, k, 1)
    assert attrs["kernel_shape"] == list(kernel)
    assert attrs["strides"] == geometry.get("strides", [1, 1])
    assert attrs["dilations"] == geometry.get("dilations", [1, 1])
    assert attrs["pads"] == geometry.get("pads", [0, 0, 0, 0])
    assert (len(conv.input) == 5) == bias
    packed = PackedWeight(
        attrs["format"], k, N, *(initializer(rewritten, name) for name in conv.input[1:4])
    )
    # Wm[(c * kH + i) * kW + j, n] = W[n, c, i, j]
    for n, c, i, j in [(0, 0, 0, 0), (N - 1, C - 1, kernel[0] - 1, kernel[1] - 1), (2, 1, 0, 0)]:
        assert unpack(packed)[(c * kernel[0] + i) * kernel[1] + j, n] == weight[n, c, i, j]
    np.testing.assert_array_equal(unpack(packed), weight.reshape(N, k).T)
    assert "W" not in {tensor.name for tensor in rewritten.graph.initializer}
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "auto_pad,size,stride,expected_pads",
    [
        ("SAME_UPPER", 10, 2, [0, 0, 1, 1]),  # needs 1: the extra pad goes at the end
        ("SAME_LOWER", 10, 2, [1, 1, 0, 0]),  # ... or at the beginning
        ("SAME_UPPER", 9, 1, [1, 1, 1, 1]),
        ("SAME_LOWER", 7, 4, [0, 0, 0, 0]),  # a stride above the kernel needs no padding
        ("VALID", 9, 2, [0, 0, 0, 0]),
    ],
)
def test_auto_pad_becomes_explicit_pads(auto_pad, size, stride, expected_pads):
    model = conv_model([2, C, size, size], auto_pad=auto_pad, strides=[stride, stride])
    rewritten = rewrite(model)
    _, attrs = fused_conv(rewritten)
    assert attrs["pads"] == expected_pads and "auto_pad" not in attrs
    assert_same_outputs(model, rewritten)


def test_same_padding_of_a_symbolic_height_is_kept():
    result = rewrite_model(conv_model([1, C, "h", 8], auto_pad="SAME_UPPER"), min_sparsity=0.0)
    (decision,) = result.decisions
    assert op_types(result.model) == ["Conv"] and not decision.rewritten
    assert "not static" in decision.reason and decision.weight_shape == (C * 9, N)


def test_valid_padding_of_a_symbolic_size_is_rewritten():
    model = conv_model(["b", C, "h", "w"], auto_pad="VALID")
    rewritten = rewrite(model)
    fused_conv(rewritten)
    assert_same_outputs(model, rewritten, {"b": 2, "h": 7, "w": 5})


def test_decision_reports_the_matrix_view():
    result = rewrite_model(conv_model([1, C, 8, 8]), min_sparsity=FORCE_REWRITE)
    (decision,) = result.decisions
    assert decision.rewritten and decision.op_type == "Conv" and decision.node_name == "/stem/Conv"
    assert decision.weight_shape == (C * 9, N) and 0.8 < decision.sparsity < 1.0


def test_the_cost_model_verdict_is_at_the_output_pixels_of_the_batch():
    (decision,) = rewrite_model(conv_model([2, C, 8, 8])).decisions
    assert decision.reason.startswith("predicted")
    assert "M=72" in decision.reason  # 2 images x 6 x 6 output pixels


def test_a_symbolic_batch_is_judged_per_image():
    (decision,) = rewrite_model(conv_model(["b", C, 8, 8])).decisions
    assert "M=36" in decision.reason  # 1 image x 6 x 6 output pixels


def test_min_sparsity_overrides_the_cost_model():
    half_sparse = conv_weight(N, C, (3, 3), sparsity=0.5)
    kept = rewrite_model(conv_model([1, C, 8, 8], weight=half_sparse), min_sparsity=0.9)
    assert op_types(kept.model) == ["Conv"]
    assert "< min-sparsity 90.0%" in kept.decisions[0].reason
    model = conv_model([1, C, 8, 8], weight=half_sparse)
    rewritten = rewrite(model, min_sparsity=0.3)
    fused_conv(rewritten)
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "channels,outputs,group,attributes",
    [
        (8, 6, 2, dict(pads=[1, 1, 1, 1])),
        (6, 6, 6, dict(pads=[1, 1, 1, 1])),  # depthwise
        (6, 12, 6, dict(strides=[2, 2], pads=[1, 0, 1, 1])),  # depthwise, channel multiplier 2
        (9, 6, 3, dict(kernel=(1, 1))),
    ],
    ids=["grouped", "depthwise", "depthwise-multiplier-strided", "grouped-1x1"],
)
def test_grouped_convolution_becomes_its_block_diagonal_matrix(channels, outputs, group, attributes):
    attributes = dict(attributes)
    kernel = attributes.pop("kernel", (3, 3))
    weight = conv_weight(outputs, channels // group, kernel, sparsity=0.5)
    constants = {"W": weight, "B": RNG.standard_normal(outputs).astype(np.float32)}
    conv = helper.make_node("Conv", ["X", "W", "B"], ["Y"], name="g", group=group, **attributes)
    model = make_model([conv], {"X": [2, channels, 9, 8]}, {"Y": any_shape(4)}, constants)
    result = rewrite_model(model, min_sparsity=0.3)
    (decision,) = result.decisions
    assert decision.rewritten and op_types(result.model) == ["SparseConv"]
    # The reported sparsity is the Conv's own weight's, not its block-diagonal matrix's.
    assert decision.sparsity == pytest.approx(1 - np.count_nonzero(weight) / weight.size)
    sparse_conv = result.model.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in sparse_conv.attribute}
    assert (attrs["C"], attrs["K"], attrs["group"]) == (channels, channels * kernel[0] * kernel[1], 1)
    assert_same_outputs(model, result.model)


def test_groups_that_do_not_divide_the_channels_are_kept():
    weight = conv_weight(N, 2, (3, 3))
    conv = helper.make_node("Conv", ["X", "W"], ["Y"], name="g", group=3)
    model = make_model([conv], {"X": [1, 5, 8, 8]}, {"Y": any_shape(4)}, {"W": weight})
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["Conv"]
    assert "5 input channels do not split into group=3" in result.decisions[0].reason


@pytest.mark.parametrize(
    "x_shape,kernel,expected",
    [([1, C, 16], (3,), "1-D convolution"), ([1, C, 4, 4, 4], (3, 3, 3), "3-D convolution")],
    ids=["1-D", "3-D"],
)
def test_convolution_that_is_not_2d_is_kept(x_shape, kernel, expected):
    model = conv_model(x_shape, weight=RNG.standard_normal([N, C, *kernel]).astype(np.float32))
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["Conv"] and expected in result.decisions[0].reason


def test_weight_that_is_a_graph_input_is_kept():
    conv = helper.make_node("Conv", ["X", "W"], ["Y"], name="conv")
    model = make_model([conv], {"X": [1, C, 8, 8], "W": [N, C, 3, 3]}, {"Y": any_shape(4)})
    (decision,) = rewrite_model(model, min_sparsity=0.0).decisions
    assert not decision.rewritten and "not a constant" in decision.reason
    assert decision.weight_shape == (C * 9, N)


def test_bias_that_is_a_graph_input_is_kept():
    conv = helper.make_node("Conv", ["X", "W", "B"], ["Y"], name="conv")
    model = make_model(
        [conv], {"X": [1, C, 8, 8], "B": [N]}, {"Y": any_shape(4)}, {"W": conv_weight(N, C, (3, 3))}
    )
    (decision,) = rewrite_model(model, min_sparsity=0.0).decisions
    assert not decision.rewritten and decision.reason == "bias is not a constant"


def test_float16_convolution_is_kept():
    model = conv_model([1, C, 8, 8], weight=conv_weight(N, C, (3, 3)).astype(np.float16))
    model.graph.input[0].type.tensor_type.elem_type = 10
    model.graph.output[0].type.tensor_type.elem_type = 10
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["Conv"] and "float32" in result.decisions[0].reason


class RecordingPolicy:
    """Keeps every Conv, recording the ConvWork the rule judged it by."""

    def __init__(self):
        self.works = []

    def judge_conv(self, weight, m, work, sparsity=None):
        self.works.append(work)
        return Verdict(False, "csr", 0.0, "recorded")


def work_of_conv_followed_by(after, kernel=(3, 3), size=8):
    """The ConvWork that the rule judges a Conv by, the Conv's output going through the nodes
    ``after`` in turn: a gate (Sigmoid, HardSigmoid) reads the current tensor, which a later Mul
    multiplies by it (or by itself when there is no gate); Add adds a graph input."""
    pads = [k // 2 for k in kernel] * 2
    nodes = [helper.make_node("Conv", ["X", "W"], ["y"], name="conv", pads=pads)]
    constants = {"W": conv_weight(N, C, kernel)}
    current = output = "y"
    gate = None
    for index, op_type in enumerate(after):
        output = f"t{index}"
        if op_type == "BatchNormalization":
            constants.update({name: np.ones(N, np.float32) for name in ("scale", "shift", "mean", "var")})
            inputs, attributes = [current, "scale", "shift", "mean", "var"], {}
        elif op_type == "Add":
            inputs, attributes = [current, "R"], {}
        elif op_type == "Mul":
            inputs, attributes = [current, gate or current], {}
        elif op_type == "Clip":
            inputs, attributes = [current], {"min": 0.0, "max": 6.0}
        elif op_type == "MaxPool":
            inputs, attributes = [current], {"kernel_shape": [2, 2], "strides": [2, 2]}
        else:
            inputs, attributes = [current], {}
        nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        if op_type in ("Sigmoid", "HardSigmoid"):
            gate = output
        else:
            current = output
    shape = [1, N, size, size]
    model = make_model(nodes, {"X": [1, C, size, size], "R": shape}, {output: None}, constants)
    policy = RecordingPolicy()
    ConvToSparseConv().convert(Graph(model), model.graph.node[0], policy)
    (work,) = policy.works
    return work


@pytest.mark.parametrize(
    "after, silu",
    [
        (["Sigmoid", "Mul"], True),
        (["BatchNormalization", "Sigmoid", "Mul"], True),
        (["Relu"], False),
        (["Sigmoid"], False),
        (["BatchNormalization", "Mul"], False),
    ],
    ids=["silu", "bn-silu", "relu", "sigmoid", "square"],
)
def test_the_cost_model_is_told_of_a_silu_after_the_conv(after, silu):
    # ORT runs a SiLU after its Conv as a pass of its own; SparseConv fuses it.
    assert work_of_conv_followed_by(after).silu == silu


@pytest.mark.parametrize(
    "after, silu, tile_finishers",
    [
        ([], False, True),
        (["Relu"], False, True),
        (["BatchNormalization", "Add", "Relu"], False, True),
        (["Add", "Sigmoid", "Mul"], True, False),
        (["Clip"], False, False),
        (["LeakyRelu"], False, False),
        (["HardSigmoid", "Mul"], False, False),
    ],
    ids=["none", "relu", "bn-residual-relu", "residual-silu", "clip", "leaky-relu", "hard-swish"],
)
def test_the_cost_model_is_told_whether_tile_kernels_could_finish_a_1x1_conv(after, silu, tile_finishers):
    # The provider keeps a 1x1 layer of little reuse on the tile kernels where they finish Y
    # themselves, which they do for no activation or a Relu, also after a residual.
    work = work_of_conv_followed_by(after, kernel=(1, 1), size=64)
    assert (work.silu, work.tile_finishers, work.tiles_per_image) == (silu, tile_finishers, 64)


@pytest.mark.parametrize(
    "after, reordered",
    [
        (["MaxPool"], False),
        (["Relu", "MaxPool"], False),
        (["BatchNormalization", "Sigmoid", "Mul", "GlobalAveragePool"], False),
        (["Relu"], True),
        (["Relu", "Add"], True),
    ],
    ids=["pool", "relu-pool", "bn-silu-global-pool", "relu", "relu-add"],
)
def test_the_cost_model_is_told_where_ort_would_keep_its_blocked_layout(after, reordered):
    # ORT's Conv reorders its output to NCHW unless a pooling node takes its layout as it is.
    assert work_of_conv_followed_by(after).dense_output_reordered == reordered
