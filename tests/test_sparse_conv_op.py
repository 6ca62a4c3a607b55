"""Op-level tests of SparseConv (docs/ops.md) against ORT's own dense operators.

Every case builds one graph with a SparseConv node and the equivalent standard graph (Conv with
the same weights and bias, then Add / activation ops) and runs both in ONNX Runtime: ORT is the
oracle.

FP32 tolerance: |Y - Y_ref| <= 1e-4 * max|Y_ref| elementwise (tests/op_testing.py says why).
"""

from __future__ import annotations

import concurrent.futures

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter.cost_model import conv_work, runs_compiled

from tests.conftest import force_family
from tests.op_testing import (
    CLIP_RANGE,
    activation_nodes,
    assert_close,
    creation_error,
    pack,
    run_error,
    session,
)

ACTIVATIONS = ["none", "relu", "clip", "gelu", "gelu_tanh", "sigmoid", "silu", "leaky_relu", "hard_swish"]
LEAKY_ALPHA = 0.2


# ---------------------------------------------------------------------------------------------
# Weights: W [Cout, C, kH, kW] is packed as the matrix Wm [K, N], Wm[(c*kH + i)*kW + j, n] =
# W[n, c, i, j].


def sparse_conv_weight(rng, n, c, kernel, sparsity):
    w = rng.standard_normal((n, c, *kernel)).astype(np.float32)
    w[rng.random(w.shape) < sparsity] = 0.0
    return w


# ---------------------------------------------------------------------------------------------
# Graphs


def conv_attributes(kernel, strides, dilations, pads):
    return dict(kernel_shape=list(kernel), strides=list(strides), dilations=list(dilations), pads=list(pads))


def epilogue_attributes(activation, alpha):
    attrs = {}
    if activation == "clip":
        attrs.update(clip_min=CLIP_RANGE[0], clip_max=CLIP_RANGE[1])
    if activation == "leaky_relu" and alpha is not None:
        attrs.update(alpha=alpha)
    return attrs


def sparse_conv_model(
    x_shape,
    w,
    fmt,
    window,
    *,
    bias=None,
    bias_as_input=False,
    residual_shape=None,
    activation="none",
    alpha=None,
    residual_before=0,
    attributes=None,
    x_parts=None,
    output_split=0,
):
    """A model computing SparseConv(X, packed W [, bias] [, residual] [, X_1, ...]) -> Y; with
    x_parts (channel counts), X comes as that many inputs X, X_1, ..., joined on the channels;
    with output_split S, Y has the first S channels and Y_2 the others."""
    n, c, kh, kw = w.shape
    packed = pack(w.reshape(w.shape[0], -1).T, fmt)  # as the matrix Wm [K, N]
    part_names = part_input_names(x_parts)
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, part_shape(x_shape, channels))
        for name, channels in zip(part_names, x_parts or [None])
    ]
    initializers = [
        numpy_helper.from_array(packed["values"], "weight_values"),
        numpy_helper.from_array(packed["offsets"], "weight_group_offsets"),
        numpy_helper.from_array(packed["indices"], "weight_input_indices"),
    ]
    node_inputs = ["X", "weight_values", "weight_group_offsets", "weight_input_indices"]
    node_inputs.append("" if bias is None else "bias")
    if bias is not None:
        if bias_as_input:
            inputs.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, [None]))
        else:
            initializers.append(numpy_helper.from_array(bias, "bias"))
    node_inputs.append("" if residual_shape is None else "residual")
    if residual_shape is not None:
        inputs.append(helper.make_tensor_value_info("residual", TensorProto.FLOAT, residual_shape))
    node_inputs += part_names[1:]
    while node_inputs[-1] == "":
        node_inputs.pop()

    attrs = dict(
        C=c,
        N=n,
        K=c * kh * kw,
        format=fmt,
        activation=activation,
        residual_before_activation=residual_before,
        **window,
        **epilogue_attributes(activation, alpha),
    )
    attrs.update(attributes or {})
    outputs = ["Y"]
    if output_split:
        attrs["output_split"] = output_split
        outputs.append("Y_2")
    attrs = {key: value for key, value in attrs.items() if value is not None}
    node = helper.make_node("SparseConv", node_inputs, outputs, domain="ortsparse", name="sc", **attrs)
    graph = helper.make_graph(
        [node],
        "sparse_conv",
        inputs,
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializers,
    )
    return newest_model_versions().make_model(graph, [("ortsparse", 1)]).SerializeToString()


def part_input_names(x_parts):
    """The names of X's parts as inputs: X, then X_1, X_2, ..."""
    return ["X", *(f"X_{p}" for p in range(1, len(x_parts or [None])))]


def part_shape(x_shape, channels):
    """The declared shape of a part of X with `channels` channels (None: X's own, or any count);
    None, of any rank, when x_shape is."""
    if x_shape is None:
        return None
    return [x_shape[0], x_shape[1] if channels is None else channels, *x_shape[2:]]


def reference_model(
    x_shape,
    w,
    window,
    *,
    bias=None,
    residual_shape=None,
    activation="none",
    alpha=None,
    residual_before=0,
    channels_last_shape=None,
    x_parts=None,
    affine=None,
):
    """The same computation with standard ONNX operators; with channels_last_shape [B, A, P, OH, OW],
    Y reshaped to it and transposed to [B, A, OH, OW, P], as SparseConv's output_channel_groups;
    with x_parts, X's parts joined by a Concat; with affine (scale, shift), a Mul and an Add along
    the channels after the activation."""
    initializers = [numpy_helper.from_array(w, "W")]
    conv_inputs = ["joined" if x_parts else "X", "W"]
    if bias is not None:
        initializers.append(numpy_helper.from_array(bias, "B"))
        conv_inputs.append("B")
    part_names = part_input_names(x_parts)
    nodes = [helper.make_node("Concat", part_names, ["joined"], axis=1)] if x_parts else []
    nodes.append(helper.make_node("Conv", conv_inputs, ["conv"], **window))
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, part_shape(x_shape, channels))
        for name, channels in zip(part_names, x_parts or [None])
    ]
    current = "conv"
    if residual_shape is not None:
        inputs.append(helper.make_tensor_value_info("residual", TensorProto.FLOAT, residual_shape))
        if residual_before:
            nodes.append(helper.make_node("Add", [current, "residual"], ["with_residual"]))
            current = "with_residual"
    if activation != "none":
        nodes += activation_nodes(activation, current, "activated", initializers, alpha=alpha)
        current = "activated"
    if affine is not None:
        for op, name, value in zip(["Mul", "Add"], ["scale", "shift"], affine):
            initializers.append(numpy_helper.from_array(value.reshape(1, -1, 1, 1), name))
            nodes.append(helper.make_node(op, [current, name], [f"{name}d"]))
            current = f"{name}d"
    if residual_shape is not None and not residual_before:
        nodes.append(helper.make_node("Add", [current, "residual"], ["with_residual"]))
        current = "with_residual"
    if channels_last_shape is not None:
        initializers.append(numpy_helper.from_array(np.array(channels_last_shape, np.int64), "grouped_shape"))
        nodes.append(helper.make_node("Reshape", [current, "grouped_shape"], ["grouped"]))
        nodes.append(helper.make_node("Transpose", ["grouped"], ["channels_last"], perm=[0, 1, 3, 4, 2]))
        current = "channels_last"
    nodes.append(helper.make_node("Identity", [current], ["Y"]))
    graph = helper.make_graph(
        nodes, "reference", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializers
    )
    return newest_model_versions().make_model(graph).SerializeToString()


# ---------------------------------------------------------------------------------------------
# Comparison


def output_shape(x_shape, n, kernel, strides, dilations, pads):
    spatial = [
        (x_shape[2 + a] + pads[a] + pads[2 + a] - dilations[a] * (kernel[a] - 1) - 1) // strides[a] + 1
        for a in range(2)
    ]
    return [x_shape[0], n, *spatial]


def check(
    library,
    rng,
    x_shape,
    n,
    kernel,
    *,
    strides=(1, 1),
    dilations=(1, 1),
    pads=(0, 0, 0, 0),
    fmt="csr",
    sparsity=0.7,
    with_bias=True,
    with_residual=False,
    activation="none",
    alpha=None,
    residual_before=0,
    threads=1,
    output_channel_groups=0,
    x_parts=None,
    output_split=0,
    weight=None,
    single_thread=0,
    output_affine=False,
):
    """Runs SparseConv and its reference on random data and compares them; with x_parts (channel
    counts adding up to x_shape[1]), X is fed to both in that many parts; with output_split,
    SparseConv's two outputs are compared joined; ``weight`` replaces the random sparse W; with
    output_affine, random output_scale and output_shift attributes. Returns the weight W."""
    w = sparse_conv_weight(rng, n, x_shape[1], kernel, sparsity) if weight is None else weight
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    y_shape = output_shape(x_shape, n, kernel, strides, dilations, pads)
    residual_shape = y_shape if with_residual else None
    x = rng.standard_normal(x_shape).astype(np.float32)
    splits = np.cumsum(x_parts or [x_shape[1]])[:-1]
    feeds = dict(zip(part_input_names(x_parts), np.split(x, splits, axis=1)))
    if with_residual:
        feeds["residual"] = rng.standard_normal(y_shape).astype(np.float32)

    window = conv_attributes(kernel, strides, dilations, pads)
    common = dict(
        bias=bias,
        residual_shape=residual_shape,
        activation=activation,
        alpha=alpha,
        residual_before=residual_before,
        x_parts=x_parts,
    )
    groups = output_channel_groups
    attributes = {"output_channel_groups": groups or None, "single_thread": single_thread or None}
    affine = None
    if output_affine:
        affine = (rng.uniform(0.5, 2.0, n).astype(np.float32), rng.standard_normal(n).astype(np.float32))
        attributes.update(output_scale=numpy_helper.from_array(affine[0]), output_shift=numpy_helper.from_array(affine[1]))
    model = sparse_conv_model(
        list(x_shape), w, fmt, window, **common, attributes=attributes, output_split=output_split
    )
    outputs = session(model, library, threads).run(None, feeds)
    if output_split:
        assert outputs[0].shape[1] == output_split and outputs[1].shape[1] == n - output_split
    actual = np.concatenate(outputs, axis=1)
    channels_last_shape = [y_shape[0], groups, n // groups, *y_shape[2:]] if groups else None
    reference = reference_model(
        list(x_shape), w, window, **common, channels_last_shape=channels_last_shape, affine=affine
    )
    expected = session(reference, threads=threads).run(None, feeds)[0]
    if groups:
        y_shape = [y_shape[0], groups, *y_shape[2:], n // groups]
    assert list(expected.shape) == y_shape
    assert_close(actual, expected)
    return w


# ---------------------------------------------------------------------------------------------
# Numerics

GEOMETRIES = {
    # name: (x_shape, n, kernel, strides, dilations, pads)
    "1x1": ((1, 17, 7, 9), 33, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    "1x1-stride2": ((1, 16, 9, 9), 20, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0)),
    "1x1-padded": ((1, 8, 5, 5), 12, (1, 1), (1, 1), (1, 1), (1, 0, 1, 2)),
    "3x3": ((3, 17, 7, 9), 33, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    "3x3-unpadded": ((1, 3, 9, 7), 17, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
    "3x3-stride2": ((1, 33, 14, 14), 40, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    "3x3-dilation2": ((1, 16, 11, 13), 24, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2)),
    "3x3-asymmetric-pads": ((1, 8, 7, 9), 17, (3, 3), (1, 1), (1, 1), (0, 1, 2, 0)),
    "3x3-pads-beyond-kernel": ((1, 4, 5, 6), 9, (3, 3), (1, 1), (1, 1), (3, 3, 3, 3)),
    "3x3-many-tiles": ((1, 8, 20, 21), 70, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    "3x3-single-pixel": ((1, 5, 3, 3), 6, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
    "5x5": ((1, 3, 16, 16), 17, (5, 5), (1, 1), (1, 1), (2, 2, 2, 2)),
    "7x7-stride2": ((1, 3, 23, 21), 16, (7, 7), (2, 2), (1, 1), (3, 3, 3, 3)),
    "2x3-mixed-axes": ((3, 6, 10, 11), 13, (2, 3), (1, 2), (2, 1), (1, 0, 0, 2)),
    # Stride 1 unpadded, X read in place: the last tile starts early to keep its reads inside X
    # (100 pixels: a 64-row tile, then 36 rows read as 48), or ends exactly on X's last float.
    "1x1-in-place-shifted-last-tile": ((2, 9, 10, 10), 19, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    "1x1-in-place-whole-tiles": ((2, 9, 8, 16), 19, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    "3x3-in-place-shifted-last-tile": ((2, 6, 11, 13), 10, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
    # Stride phases: only the even ones are used with dilation 2; stride 3 has no vector path.
    "3x3-stride2-dilation2": ((1, 6, 15, 15), 11, (3, 3), (2, 2), (2, 2), (2, 2, 2, 2)),
    "3x3-stride3": ((1, 5, 17, 16), 7, (3, 3), (3, 3), (1, 1), (1, 1, 1, 1)),
    # Rows long enough for several vectors of the stride-2 plane packer, clipped on both sides.
    "3x3-stride2-wide-rows": ((1, 4, 9, 70), 9, (3, 3), (2, 2), (1, 1), (1, 1, 1, 2)),
}


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_geometries(library, rng, geometry, fmt):
    x_shape, n, kernel, strides, dilations, pads = geometry
    check(
        library,
        rng,
        x_shape,
        n,
        kernel,
        strides=strides,
        dilations=dilations,
        pads=pads,
        fmt=fmt,
        with_residual=True,
        activation="relu",
    )


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
def test_sparsity(library, rng, sparsity, fmt):
    check(library, rng, (1, 16, 9, 7), 36, (3, 3), pads=(1, 1, 1, 1), fmt=fmt, sparsity=sparsity)


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("residual_before", [0, 1])
def test_activations(library, rng, activation, residual_before, fmt):
    alpha = LEAKY_ALPHA if activation == "leaky_relu" else None
    check(
        library,
        rng,
        (1, 9, 8, 11),
        21,
        (3, 3),
        pads=(1, 1, 1, 1),
        fmt=fmt,
        with_residual=True,
        activation=activation,
        alpha=alpha,
        residual_before=residual_before,
    )


def test_leaky_relu_default_alpha(library, rng):
    check(library, rng, (1, 9, 8, 11), 21, (3, 3), activation="leaky_relu")


@pytest.mark.parametrize("with_residual", [False, True])
def test_without_bias(library, rng, with_residual):
    check(library, rng, (2, 7, 6, 5), 10, (3, 3), pads=(1, 1, 1, 1), with_bias=False, with_residual=with_residual)


@pytest.mark.parametrize("single_thread", [0, 1])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_shape, kernel", [((1, 40, 14, 14), (3, 3)), ((3, 64, 9, 10), (1, 1))])
def test_threads(library, rng, threads, x_shape, kernel, single_thread):
    # single_thread=1 runs every task on the calling thread, whatever the pool's size.
    pads = (1, 1, 1, 1) if kernel == (3, 3) else (0, 0, 0, 0)
    check(
        library, rng, x_shape, 150, kernel, pads=pads, threads=threads, with_residual=True,
        activation="silu", single_thread=single_thread,
    )


@pytest.mark.parametrize("x_parts, split", [(None, 0), ([24, 40], 3)], ids=["one-x", "x-in-parts-split-y"])
def test_batch_larger_than_one_wave(library, rng, monkeypatch, x_parts, split):
    # Each image's input planes (64 channels of 262 x 262) take over half the scratch budget of
    # one parallel wave, so the images run one wave each. (Compiled code would pack them in bands.)
    monkeypatch.setenv("ORTSPARSE_JIT", "0")
    check(
        library,
        rng,
        (3, 64, 260, 260),
        8,
        (3, 3),
        pads=(1, 1, 1, 1),
        sparsity=0.95,
        threads=2,
        with_residual=not split,
        x_parts=x_parts,
        output_split=split,
    )


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize(
    "x_shape, kernel, strides, pads",
    [
        ((1, 17, 7, 9), (1, 1), (1, 1), (0, 0, 0, 0)),
        ((3, 17, 7, 9), (3, 3), (1, 1), (1, 1, 1, 1)),
        ((1, 33, 15, 13), (3, 3), (2, 2), (1, 0, 1, 2)),
        # Output rows wider than two AVX2 vectors, padded on the left only.
        ((1, 5, 6, 21), (3, 3), (1, 1), (1, 2, 1, 0)),
        # Long enough groups for CSR to split its input features into blocks in every family.
        ((1, 300, 6, 7), (3, 3), (1, 1), (1, 1, 1, 1)),
        ((2, 9, 10, 10), (1, 1), (1, 1), (0, 0, 0, 0)),
        ((1, 4, 9, 70), (3, 3), (2, 2), (1, 1, 1, 2)),
    ],
    ids=["1x1", "3x3", "3x3-stride2", "3x3-wide-rows", "3x3-k-blocks", "1x1-in-place", "3x3-stride2-wide-rows"],
)
def test_kernel_families(library, rng, family, fmt, x_shape, kernel, strides, pads):
    sparsity = 0.5 if x_shape[1] == 300 else 0.9
    check(
        library,
        rng,
        x_shape,
        38,
        kernel,
        strides=strides,
        pads=pads,
        fmt=fmt,
        sparsity=sparsity,
        with_residual=True,
        activation="gelu",
        threads=2,
    )


def test_finishing_tile_kernels_write_channels_without_weights_in_the_last_block(
    library, rng, family
):
    # A 1x1 layer read in place on an image of few tiles: its tile kernels finish Y in the last
    # block of input features. 480 input channels make several blocks in every family; half the
    # output channels have weights in the first 16 input channels only, none in the last block,
    # and some none at all: those must be written too (bias alone for the empty ones).
    n, c = 48, 480
    weight = sparse_conv_weight(rng, n, c, (1, 1), 0.8)
    weight[::2, 16:] = 0
    weight[::5] = 0
    check(library, rng, (1, c, 3, 40), n, (1, 1), weight=weight)


@pytest.mark.parametrize("activation", ["leaky_relu", "hard_swish"])
def test_new_activations_in_each_family(library, rng, family, activation):
    alpha = LEAKY_ALPHA if activation == "leaky_relu" else None
    x_shape, n, kernel, pads = (1, 9, 8, 11), 21, (3, 3), (1, 1, 1, 1)
    check(library, rng, x_shape, n, kernel, pads=pads, with_residual=True, activation=activation, alpha=alpha)


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize(
    "x_shape, kernel, strides, pads",
    [
        ((1, 17, 7, 9), (1, 1), (1, 1), (0, 0, 0, 0)),
        # 1x1 in place where the tile kernels would finish Y themselves (10% dense, Relu).
        ((1, 8, 20, 20), (1, 1), (1, 1), (0, 0, 0, 0)),
        ((3, 17, 7, 9), (3, 3), (1, 1), (1, 1, 1, 1)),
        ((1, 33, 15, 13), (3, 3), (2, 2), (1, 0, 1, 2)),
        ((1, 8, 20, 21), (3, 3), (1, 1), (1, 1, 1, 1)),
    ],
    ids=["1x1", "1x1-finishing-tiles", "3x3", "3x3-stride2", "3x3-many-tiles"],
)
@pytest.mark.parametrize("residual", ["none", "before", "after"])
def test_output_affine_in_each_family(library, rng, family, fmt, x_shape, kernel, strides, pads, residual):
    check(
        library,
        rng,
        x_shape,
        24,
        kernel,
        strides=strides,
        pads=pads,
        fmt=fmt,
        sparsity=0.9,
        activation="hard_swish" if kernel == (3, 3) else "relu",
        with_residual=residual != "none",
        residual_before=int(residual == "before"),
        output_affine=True,
        threads=2,
    )


@pytest.mark.parametrize("layout", ["split", "channel-groups", "x-in-parts"])
def test_output_affine_with_other_layouts(library, rng, layout):
    options = {
        "split": dict(output_split=10),
        "channel-groups": dict(output_channel_groups=3),
        "x-in-parts": dict(x_parts=[7, 10]),
    }[layout]
    check(library, rng, (2, 17, 9, 8), 24, (3, 3), pads=(1, 1, 1, 1), activation="silu", output_affine=True, **options)


def test_empty_batch(library, rng):
    check(library, rng, (0, 5, 6, 7), 8, (3, 3), pads=(1, 1, 1, 1), with_residual=True)


def run_concurrently(library, rng, sizes, width):
    """Runs one session from 4 threads at once on inputs of (batch, height) `sizes` (each 4 times)
    and `width`, and compares every output with ORT's."""
    w = sparse_conv_weight(rng, 24, 10, (3, 3), 0.8)
    window = conv_attributes((3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    sess = session(sparse_conv_model([None, 10, None, None], w, "csr", window), library, threads=2)
    reference = session(reference_model([None, 10, None, None], w, window))
    inputs = [rng.standard_normal((b, 10, h, width)).astype(np.float32) for b, h in sizes * 4]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda x: sess.run(None, {"X": x})[0], inputs))
    for x, y in zip(inputs, outputs):
        assert_close(y, reference.run(None, {"X": x})[0])


def test_concurrent_runs_share_one_kernel(library, rng):
    # ORT may run one session from several threads at once: the kernel keeps no per-call state.
    run_concurrently(library, rng, [(1, 5), (2, 12), (3, 7)], 9)


def test_more_input_sizes_than_the_kernel_keeps_plans_for(library, rng):
    # A node keeps the plans of 8 input sizes: older ones are evicted and rebuilt when they return.
    w = sparse_conv_weight(rng, 12, 5, (3, 3), 0.7)
    window = conv_attributes((3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    sess = session(sparse_conv_model([1, 5, None, None], w, "csr", window), library)
    reference = session(reference_model([1, 5, None, None], w, window))
    for height in [*range(3, 14), 3, 4]:
        x = rng.standard_normal((1, 5, height, 2 * height + 1)).astype(np.float32)
        assert_close(sess.run(None, {"X": x})[0], reference.run(None, {"X": x})[0])


def test_bias_given_at_run_time(library, rng):
    w = sparse_conv_weight(rng, 8, 4, (3, 3), 0.5)
    bias = rng.standard_normal(8).astype(np.float32)
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    window = conv_attributes((3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    model = sparse_conv_model([1, 4, 6, 6], w, "csr", window, bias=bias, bias_as_input=True)
    y = session(model, library).run(None, {"X": x, "bias": bias})[0]
    expected = session(reference_model([1, 4, 6, 6], w, window, bias=bias)).run(None, {"X": x})[0]
    assert_close(y, expected)


# ---------------------------------------------------------------------------------------------
# Errors

WINDOW_3X3 = conv_attributes((3, 3), (1, 1), (1, 1), (1, 1, 1, 1))


@pytest.fixture
def weight_4x3x3x3(rng):
    return sparse_conv_weight(rng, 4, 3, (3, 3), 0.5)


def test_wrong_channel_count_at_run_time(library, weight_4x3x3x3):
    model = sparse_conv_model([1, None, 5, 5], weight_4x3x3x3, "csr", WINDOW_3X3)
    message = run_error(model, library, {"X": np.zeros((1, 5, 5, 5), np.float32)})
    assert "SparseConv node 'sc'" in message and "X has 5 channels" in message and "C is 3" in message


def test_wrong_rank_at_run_time(library, weight_4x3x3x3):
    model = sparse_conv_model([None, None, None], weight_4x3x3x3, "csr", WINDOW_3X3)
    message = run_error(model, library, {"X": np.zeros((3, 5, 5), np.float32)})
    assert "rank 4" in message and "[3, 5, 5]" in message


def test_image_smaller_than_kernel_at_run_time(library, weight_4x3x3x3):
    window = conv_attributes((3, 3), (1, 1), (1, 1), (0, 0, 0, 0))
    model = sparse_conv_model([1, 3, None, None], weight_4x3x3x3, "csr", window)
    message = run_error(model, library, {"X": np.zeros((1, 3, 2, 5), np.float32)})
    assert "output size 0x3 < 1" in message


def test_residual_shape_mismatch_at_run_time(library, weight_4x3x3x3):
    model = sparse_conv_model([1, 3, 5, 5], weight_4x3x3x3, "csr", WINDOW_3X3, residual_shape=[None] * 4)
    feeds = {"X": np.zeros((1, 3, 5, 5), np.float32), "residual": np.zeros((1, 4, 5, 4), np.float32)}
    message = run_error(model, library, feeds)
    assert "residual has shape [1, 4, 5, 4]" in message and "Y has shape [1, 4, 5, 5]" in message


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"group": 3}, "group must be 1"),
        ({"K": 26}, "K = 26 must equal C * kH * kW = 3 * 3 * 3"),
        ({"C": 2}, "K = 27 must equal C * kH * kW = 2 * 3 * 3"),
        ({"kernel_shape": None}, "attribute kernel_shape is required"),
        ({"kernel_shape": [3, 3, 1]}, "kernel_shape must have 2 values"),
        ({"strides": [0, 1]}, "strides = [0, 1] must hold values in [1, 2^31)"),
        ({"pads": [1, 1]}, "pads must have 4 values"),
        ({"activation": "tanh"}, "unknown activation 'tanh'"),
        ({"single_thread": -1}, "single_thread must be 0 or 1, got -1"),
        (
            {"output_scale": numpy_helper.from_array(np.ones(4, np.float32))},
            "attributes output_scale and output_shift come together",
        ),
        (
            {
                "output_scale": numpy_helper.from_array(np.ones(4, np.float32)),
                "output_shift": numpy_helper.from_array(np.ones(3, np.float32)),
            },
            "attribute output_shift must be a float tensor of shape [4], got shape [3]",
        ),
    ],
    ids=[
        "group", "K", "C", "no-kernel-shape", "kernel-rank", "zero-stride", "pads-length",
        "activation", "single-thread", "scale-without-shift", "shift-shape",
    ],
)
def test_bad_attributes(library, weight_4x3x3x3, attributes, expected):
    model = sparse_conv_model([1, 3, 5, 5], weight_4x3x3x3, "csr", WINDOW_3X3, attributes=attributes)
    message = creation_error(model, library)
    assert "SparseConv node 'sc'" in message and expected in message


def test_malformed_packed_weights(library, weight_4x3x3x3):
    # Validation is SparseGemm's (tested in full there); one case shows SparseConv runs it.
    model = sparse_conv_model([1, 3, 5, 5], weight_4x3x3x3, "block4", WINDOW_3X3, attributes={"N": 5})
    assert "weight_group_offsets has 2 entries, expected 3" in creation_error(model, library)


# ---------------------------------------------------------------------------------------------
# Compiled kernels: on AVX-512, a layer whose images span at least 6 tiles of 64 grid positions,
# and whose tile kernels would not finish Y themselves, runs code generated for its weights.
# ORTSPARSE_VERBOSE=1 makes each node report on stderr which kernels serve each input size.

COMPILED_GEOMETRIES = {
    # name: (x_shape, n, kernel, strides, dilations, pads)
    # 29 channels: two blocks of sums in registers (15 and 14).
    "3x3": ((1, 16, 24, 24), 29, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    # 56 channels: two blocks of 28, every register that holds sums.
    "3x3-stride2": ((1, 12, 40, 38), 56, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
    # Read in place, the last tile starting early; 57 channels: three blocks of 19.
    "1x1-in-place": ((2, 24, 20, 21), 57, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    "3x3-in-place-shifted-last-tile": ((1, 8, 22, 23), 9, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
    "5x5-dilation2": ((1, 6, 30, 30), 8, (5, 5), (1, 1), (2, 2), (4, 4, 4, 4)),
    # 200 channels: eight blocks of 25.
    "1x1-many-chunks": ((1, 10, 20, 20), 200, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
    # 2700 input features: each block of channels takes many pieces of code, each reading more
    # weights than one 8-bit displacement window.
    "3x3-many-pieces": ((1, 300, 20, 20), 30, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
    "1x1-one-channel": ((1, 5, 20, 20), 1, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0)),
}


def kernel_reports(capfd):
    """The SparseConv kernel reports (ORTSPARSE_VERBOSE=1) written to stderr since the last call."""
    return [line for line in capfd.readouterr().err.splitlines() if line.startswith("ortsparse: SparseConv")]


@pytest.fixture
def avx512_reports(monkeypatch, capfd):
    """Forces the AVX-512 family with ORTSPARSE_VERBOSE=1; returns kernel_reports for the test."""
    force_family("avx512", monkeypatch)
    monkeypatch.setenv("ORTSPARSE_VERBOSE", "1")
    return lambda: kernel_reports(capfd)


def assert_compiled(reports):
    (report,) = reports
    assert ": compiled, " in report, report


@pytest.mark.parametrize("geometry", COMPILED_GEOMETRIES.values(), ids=COMPILED_GEOMETRIES.keys())
def test_compiled_geometries(library, rng, avx512_reports, geometry):
    x_shape, n, kernel, strides, dilations, pads = geometry
    sparsity = 0.5 if x_shape[1] == 300 else 0.8
    check(
        library,
        rng,
        x_shape,
        n,
        kernel,
        strides=strides,
        dilations=dilations,
        pads=pads,
        sparsity=sparsity,
        with_residual=True,
        activation="silu",
    )
    assert_compiled(avx512_reports())


@pytest.mark.parametrize("sparsity", [0.0, 1.0])
def test_compiled_dense_and_empty_weights(library, rng, avx512_reports, sparsity):
    check(
        library,
        rng,
        (1, 16, 24, 24),
        33,
        (3, 3),
        pads=(1, 1, 1, 1),
        sparsity=sparsity,
        activation="gelu",
    )
    assert_compiled(avx512_reports())


@pytest.mark.parametrize("activation, residual_before", [("none", 0), ("relu", 1), ("leaky_relu", 0)])
def test_compiled_epilogues_batches_and_threads(library, rng, avx512_reports, activation, residual_before):
    alpha = LEAKY_ALPHA if activation == "leaky_relu" else None
    check(
        library,
        rng,
        (3, 12, 26, 25),
        20,
        (3, 3),
        pads=(1, 1, 1, 1),
        with_residual=True,
        activation=activation,
        alpha=alpha,
        residual_before=residual_before,
        threads=2,
    )
    assert_compiled(avx512_reports())


@pytest.mark.parametrize(
    "x_shape, kernel, fmt, sparsity, activation, reason",
    [
        ((1, 8, 7, 9), (3, 3), "csr", 0.7, "silu", "tile kernels (2 tiles of grid positions per image, fewer than 6)"),
        # 24 channels at 10% density: 2.4 weights per input vector, too few to beat them.
        ((1, 8, 20, 20), (1, 1), "csr", 0.9, "relu", "tile kernels (they finish Y themselves)"),
        ((1, 8, 24, 24), (3, 3), "block4", 0.7, "silu", "tile kernels (block4 weights)"),
    ],
    ids=["small-image", "finishing-tile-kernels", "block4"],
)
def test_where_tile_kernels_serve(library, rng, avx512_reports, x_shape, kernel, fmt, sparsity, activation, reason):
    pads = (1, 1, 1, 1) if kernel == (3, 3) else (0, 0, 0, 0)
    check(
        library,
        rng,
        x_shape,
        24,
        kernel,
        pads=pads,
        fmt=fmt,
        sparsity=sparsity,
        activation=activation,
        with_residual=True,
    )
    (report,) = avx512_reports()
    assert report.endswith(f"input {x_shape[2]}x{x_shape[3]}: {reason}"), report


def test_finishing_layers_compiled_when_dense_enough(library, rng, avx512_reports):
    # 24 channels at 30% density: 7.2 weights per input vector.
    check(library, rng, (1, 8, 20, 20), 24, (1, 1), sparsity=0.7, activation="relu", with_residual=True)
    assert_compiled(avx512_reports())


# The rewriter's cost model counts compiled code's costs where the provider runs it
# (cost_model.runs_compiled): its choice must match the provider's.
PLANS_OF_THE_COST_MODEL = {
    # name: (x_shape, n, kernel, strides, pads, sparsity, activation)
    "3x3": ((1, 16, 24, 24), 29, (3, 3), (1, 1), (1, 1, 1, 1), 0.8, "silu"),
    "3x3-stride2": ((1, 12, 40, 38), 56, (3, 3), (2, 2), (1, 1, 1, 1), 0.8, "none"),
    "3x3-small-image": ((1, 8, 7, 9), 24, (3, 3), (1, 1), (1, 1, 1, 1), 0.7, "silu"),
    "1x1-little-reuse-relu": ((1, 8, 20, 20), 24, (1, 1), (1, 1), (0, 0, 0, 0), 0.9, "relu"),
    "1x1-little-reuse-silu": ((1, 8, 20, 20), 24, (1, 1), (1, 1), (0, 0, 0, 0), 0.9, "silu"),
    "1x1-little-reuse-hard-swish": ((1, 8, 20, 20), 24, (1, 1), (1, 1), (0, 0, 0, 0), 0.9, "hard_swish"),
    "1x1-reused": ((1, 8, 20, 20), 24, (1, 1), (1, 1), (0, 0, 0, 0), 0.6, "none"),
    "1x1-stride2-little-reuse": ((1, 8, 40, 40), 24, (1, 1), (2, 2), (0, 0, 0, 0), 0.9, "none"),
    "3x1-little-reuse": ((1, 8, 20, 20), 24, (3, 1), (1, 1), (1, 0, 1, 0), 0.9, "relu"),
    "1x3-little-reuse": ((1, 8, 20, 20), 24, (1, 3), (1, 1), (0, 1, 0, 1), 0.9, "relu"),
    "1x1-small-image-reused": ((1, 8, 12, 12), 24, (1, 1), (1, 1), (0, 0, 0, 0), 0.3, "relu"),
}


@pytest.mark.parametrize("plan", PLANS_OF_THE_COST_MODEL.values(), ids=PLANS_OF_THE_COST_MODEL.keys())
def test_the_cost_model_knows_where_compiled_code_runs(library, rng, avx512_reports, plan):
    x_shape, n, kernel, strides, pads, sparsity, activation = plan
    w = check(library, rng, x_shape, n, kernel, strides=strides, pads=pads, sparsity=sparsity, activation=activation)
    out_size = output_shape(x_shape, n, kernel, strides, (1, 1), pads)[2:]
    work = conv_work(x_shape, out_size, kernel, strides, (1, 1), pads, activation=activation)
    predicted = runs_compiled("avx512", work, w[0].size, n, np.count_nonzero(w))
    (report,) = avx512_reports()
    assert (": compiled, " in report) == predicted, report


def test_jit_turned_off(library, rng, avx512_reports, monkeypatch):
    monkeypatch.setenv("ORTSPARSE_JIT", "0")
    check(library, rng, (1, 16, 24, 24), 29, (3, 3), pads=(1, 1, 1, 1), activation="silu")
    (report,) = avx512_reports()
    assert report.endswith("input 24x24: tile kernels (ORTSPARSE_JIT=0)"), report


def test_families_without_compiled_kernels(library, rng, family, capfd, monkeypatch):
    monkeypatch.setenv("ORTSPARSE_VERBOSE", "1")
    check(library, rng, (1, 16, 24, 24), 29, (3, 3), pads=(1, 1, 1, 1), activation="silu")
    if family == "avx512":
        assert_compiled(kernel_reports(capfd))
    else:
        (report,) = kernel_reports(capfd)
        assert report.endswith("tile kernels (no compiled kernels in this ISA family)"), report


@pytest.mark.parametrize("variable", ["ORTSPARSE_JIT", "ORTSPARSE_VERBOSE"])
def test_switch_variables_other_than_0_or_1(library, weight_4x3x3x3, monkeypatch, variable):
    monkeypatch.setenv(variable, "yes")
    model = sparse_conv_model([1, 3, 5, 5], weight_4x3x3x3, "csr", WINDOW_3X3)
    message = creation_error(model, library)
    assert "SparseConv node 'sc'" in message and f"{variable}='yes' is not 0 or 1" in message


def test_weights_past_the_compiled_limit_keep_the_tile_kernels(library, rng, avx512_reports):
    # 512 x 512 x 3 x 3 at 50%: about 1.18 million stored weights, past the 2^20 compiled at most.
    check(library, rng, (1, 512, 20, 20), 512, (3, 3), pads=(1, 1, 1, 1), sparsity=0.5, activation="silu")
    (report,) = avx512_reports()
    assert "tile kernels (not compiled: " in report and "more than the 1048576 compiled at most)" in report, report


def test_concurrent_runs_compile_each_input_size_safely(library, rng, avx512_reports):
    # Runs meeting a new input size at once may each compile it; every run must still be right.
    run_concurrently(library, rng, [(1, 24), (2, 30), (1, 26)], 25)
    reports = avx512_reports()
    assert all(": compiled, " in report for report in reports), reports
    assert {report.split(", input ")[1].split(":")[0] for report in reports} == {"24x25", "30x25", "26x25"}


# Compiled plans whose input planes pass 256K floats per image pack them in bands of output rows
# (each band's task packs it into its thread's buffer, then multiplies it by every block): about
# 1/16 of the rows, at least enough for 256 grid positions, within 192K floats, and 4 bands or
# more per image. Grid position 0 of a band is its first row's first pixel.

BANDED_GEOMETRIES = {
    # name: (x_shape, n, kernel, strides, dilations, pads, band rows or None for whole planes)
    # 66 output rows in bands of 5: the last band has one row.
    "3x3-stride2": ((1, 32, 132, 122), 30, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 5),
    # Two images; 110 rows in bands of 7, the last of 5.
    "3x3-batch2": ((2, 24, 110, 100), 29, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 7),
    # Taps reach 4 rows past a band's last.
    "5x5-dilation2": ((1, 16, 128, 120), 24, (5, 5), (1, 1), (2, 2), (4, 4, 4, 4), 8),
    # A 1x1 layer packs planes only for its stride; 256 grid positions take 6 of its 45 rows.
    "1x1-stride2": ((1, 160, 90, 90), 20, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), 6),
    # 249,984 floats of planes: at most 256K, the whole image's.
    "3x3-whole-planes": ((1, 24, 100, 100), 29, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), None),
    # Bands of 256 grid positions would take 10 of its 24 rows: fewer than 4 bands.
    "3x3-too-few-bands": ((1, 512, 24, 24), 16, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), None),
}


@pytest.mark.parametrize("geometry", BANDED_GEOMETRIES.values(), ids=BANDED_GEOMETRIES.keys())
def test_compiled_planes_in_bands(library, rng, avx512_reports, geometry):
    x_shape, n, kernel, strides, dilations, pads, band_rows = geometry
    check(
        library,
        rng,
        x_shape,
        n,
        kernel,
        strides=strides,
        dilations=dilations,
        pads=pads,
        sparsity=0.8,
        with_residual=True,
        activation="silu",
        threads=2,
    )
    (report,) = avx512_reports()
    assert ": compiled, " in report, report
    assert report.endswith(f", planes in bands of {band_rows} rows") == (band_rows is not None), report


def test_planes_in_bands_with_output_channel_groups(library, rng, avx512_reports):
    check(
        library,
        rng,
        (1, 32, 132, 122),
        30,
        (3, 3),
        strides=(2, 2),
        pads=(1, 1, 1, 1),
        sparsity=0.8,
        activation="sigmoid",
        threads=2,
        output_channel_groups=3,
    )
    (report,) = avx512_reports()
    assert report.endswith(", planes in bands of 5 rows"), report


def test_planes_in_bands_given_back_when_the_weights_do_not_compile(library, rng, avx512_reports):
    # 1024 x 256 x 3 x 3 at 50%: about 1.18 million stored weights, past the 2^20 compiled at most;
    # its planes (454K floats) would be packed in bands of 7 rows, but the tile kernels read the
    # whole image's.
    check(library, rng, (1, 256, 40, 40), 1024, (3, 3), pads=(1, 1, 1, 1), sparsity=0.5, threads=2)
    (report,) = avx512_reports()
    assert "tile kernels (not compiled: " in report, report


# ---------------------------------------------------------------------------------------------
# X in parts (inputs 6-8 after X): a Concat of them along the channels, read by SparseConv itself.
# Compiled code reads each part in place where X could be read in place (stride 1, unpadded),
# each from its own base register; otherwise the parts are packed into the planes.

X_PARTS_GEOMETRIES = {
    # name: (x_shape, n, kernel, strides, pads, x_parts, how the compiled kernels read them)
    "1x1-two-parts": ((2, 40, 20, 21), 57, (1, 1), (1, 1), (0, 0, 0, 0), [16, 24], "in place"),
    "1x1-four-parts": ((1, 37, 24, 20), 30, (1, 1), (1, 1), (0, 0, 0, 0), [8, 1, 20, 8], "in place"),
    "1x1-an-empty-part": ((1, 24, 20, 21), 30, (1, 1), (1, 1), (0, 0, 0, 0), [16, 0, 8], "in place"),
    # The last tile starts early, inside every part.
    "3x3-unpadded": ((1, 12, 22, 23), 9, (3, 3), (1, 1), (0, 0, 0, 0), [5, 7], "in place"),
    "3x3-padded": ((1, 12, 24, 24), 29, (3, 3), (1, 1), (1, 1, 1, 1), [4, 8], "packed"),
    # Planes past 256K floats: packed from the parts band by band.
    "3x3-stride2-bands": ((1, 32, 132, 122), 30, (3, 3), (2, 2), (1, 1, 1, 1), [20, 12], "bands"),
}


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("geometry", X_PARTS_GEOMETRIES.values(), ids=X_PARTS_GEOMETRIES.keys())
def test_x_in_parts(library, rng, avx512_reports, monkeypatch, geometry, jit):
    monkeypatch.setenv("ORTSPARSE_JIT", jit)
    x_shape, n, kernel, strides, pads, x_parts, reading = geometry
    check(
        library,
        rng,
        x_shape,
        n,
        kernel,
        strides=strides,
        pads=pads,
        sparsity=0.8,
        with_residual=True,
        activation="silu",
        threads=2,
        x_parts=x_parts,
    )
    (report,) = avx512_reports()
    in_place = f", X's {len(x_parts)} parts read in place"
    if jit == "0":
        packed = f", on planes packed from X's {len(x_parts)} parts"
        assert report.endswith(packed) == (reading == "in place"), report
    else:
        assert ": compiled, " in report and report.endswith(in_place) == (reading == "in place"), report
        assert ("planes in bands" in report) == (reading == "bands"), report


def test_x_in_parts_for_tile_kernels_of_each_family(library, rng, family):
    check(library, rng, (1, 20, 9, 10), 17, (1, 1), x_parts=[12, 8], with_residual=True, activation="relu")


def test_x_in_parts_of_a_new_size_get_a_new_plan(library, rng, avx512_reports):
    # The same node, fed parts of other channel counts (the same C): the in-place offsets differ.
    w = sparse_conv_weight(rng, 24, 40, (1, 1), 0.8)
    window = conv_attributes((1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    x_shape = [1, 40, 20, 21]
    x = rng.standard_normal(x_shape).astype(np.float32)
    expected = session(reference_model(x_shape, w, window)).run(None, {"X": x})[0]
    model = sparse_conv_model([1, "c", 20, 21], w, "csr", window, x_parts=[None, None])
    sess = session(model, library)
    for split in [16, 30, 16]:
        actual = sess.run(None, {"X": x[:, :split], "X_1": x[:, split:]})[0]
        assert_close(actual, expected)
    reports = avx512_reports()
    assert len(reports) == 2 and all(report.endswith("X's 2 parts read in place") for report in reports), reports


@pytest.mark.parametrize(
    "shapes, expected",
    [
        ([[1, 16, 5, 5], [1, 24, 5, 6]], "part 1 of X has shape [1, 24, 5, 6], which does not match X's [1, 16, 5, 5]"),
        ([[1, 16, 5, 5], [2, 24, 5, 5]], "part 1 of X has shape [2, 24, 5, 5]"),
        ([[1, 16, 5, 5], [1, 20, 5, 5]], "X has 36 channels (shape [1, 36, 5, 5]) but attribute C is 40"),
        ([[16, 5, 5], [1, 24, 5, 5]], "X must have rank 4 (NCHW), got shape [16, 5, 5]"),
    ],
    ids=["width", "batch", "channels", "rank"],
)
def test_x_parts_mismatch_at_run_time(library, rng, shapes, expected):
    w = sparse_conv_weight(rng, 8, 40, (1, 1), 0.5)
    window = conv_attributes((1, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    model = sparse_conv_model(None, w, "csr", window, x_parts=[16, 24])
    feeds = {name: np.zeros(shape, np.float32) for name, shape in zip(["X", "X_1"], shapes)}
    message = run_error(model, library, feeds)
    assert "SparseConv node 'sc'" in message and expected in message, message


def test_x_part_after_a_missing_one(library, weight_4x3x3x3):
    model = sparse_conv_model([1, 3, 5, 5], weight_4x3x3x3, "csr", WINDOW_3X3)
    model = onnx.load_from_string(model)
    model.graph.node[0].input.extend(["", "", "", "X"])
    message = creation_error(model.SerializeToString(), library)
    assert "input 6 (a part of X) is missing while a later part is given" in message, message


# ---------------------------------------------------------------------------------------------
# output_split S: Y gets channels [0, S), the second output Y_2 the others (two sibling convs of
# the same X merged into one).

SPLIT_GEOMETRIES = {
    # name: (x_shape, n, split, kernel, strides, pads)
    # 64 channels in compiled blocks of 22, 21 and 21: the split at 30 falls inside the second.
    "1x1-in-place": ((2, 24, 20, 21), 64, 30, (1, 1), (1, 1), (0, 0, 0, 0)),
    # The split on a block's edge, and on a 16-channel store's.
    "3x3-padded": ((1, 12, 24, 24), 48, 16, (3, 3), (1, 1), (1, 1, 1, 1)),
    "3x3-stride2-bands": ((1, 32, 132, 122), 30, 7, (3, 3), (2, 2), (1, 1, 1, 1)),
    "one-channel-each-side": ((1, 8, 20, 20), 2, 1, (1, 1), (1, 1), (0, 0, 0, 0)),
}


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("geometry", SPLIT_GEOMETRIES.values(), ids=SPLIT_GEOMETRIES.keys())
def test_output_split(library, rng, monkeypatch, geometry, jit):
    monkeypatch.setenv("ORTSPARSE_JIT", jit)
    x_shape, n, split, kernel, strides, pads = geometry
    for with_bias, activation in [(True, "silu"), (False, "none")]:
        check(
            library,
            rng,
            x_shape,
            n,
            kernel,
            strides=strides,
            pads=pads,
            sparsity=0.8,
            with_bias=with_bias,
            activation=activation,
            threads=2,
            output_split=split,
        )


@pytest.mark.parametrize("fmt", ["csr", "block4"])
def test_output_split_in_each_family(library, rng, family, fmt):
    check(library, rng, (1, 20, 9, 10), 40, (1, 1), fmt=fmt, output_split=12, activation="relu")
    check(library, rng, (1, 6, 9, 10), 24, (3, 3), pads=(1, 1, 1, 1), fmt=fmt, output_split=20)


@pytest.mark.parametrize(
    "split, outputs, attributes, residual, expected",
    [
        (4, 2, {}, False, "output_split = 4 must be in [1, N = 4) with a second output Y_2"),
        (2, 1, {}, False, "output_split = 2 must be in [1, N = 4) with a second output Y_2, or 0"),
        (0, 2, {}, False, "output_split = 0 must be in [1, N = 4) with a second output Y_2"),
        (2, 2, {"output_channel_groups": 2}, False, "output_split and output_channel_groups cannot"),
        (2, 2, {}, True, "a residual input cannot be added to an output split in two"),
    ],
    ids=["not-below-n", "no-second-output", "second-output-unsplit", "with-groups", "with-residual"],
)
def test_bad_output_split(library, weight_4x3x3x3, split, outputs, attributes, residual, expected):
    model = sparse_conv_model(
        [1, 3, 5, 5],
        weight_4x3x3x3,
        "csr",
        WINDOW_3X3,
        residual_shape=[1, 4, 5, 5] if residual else None,
        attributes={**attributes, "output_split": split or None},
    )
    model = onnx.load_from_string(model)
    del model.graph.node[0].output[1:]
    model.graph.node[0].output.extend(["Y_2"] * (outputs - 1))
    message = creation_error(model.SerializeToString(), library)
    assert "SparseConv node 'sc'" in message and expected in message, message


# ---------------------------------------------------------------------------------------------
# output_channel_groups A: Y is [B, A, OH, OW, N / A], the NCHW result reshaped to
# [B, A, N / A, OH, OW] and transposed, as detection heads lay out each anchor's predictions.

CHANNELS_LAST_GEOMETRIES = {
    # name: (x_shape, n, groups, kernel, strides, pads)
    # 51 channels in groups of 17: compiled blocks of 26 and 25 and stores of up to 16 channels
    # each straddle groups; 7 tiles per image, so AVX-512 compiles it.
    "1x1-detect-like": ((2, 24, 20, 21), 51, 3, (1, 1), (1, 1), (0, 0, 0, 0)),
    # The grid is wider than Y: the output stage writes one output row at a time.
    "3x3-stride2": ((1, 8, 30, 27), 12, 4, (3, 3), (2, 2), (1, 1, 1, 1)),
    "one-channel-per-group": ((1, 6, 9, 10), 5, 5, (1, 1), (1, 1), (0, 0, 0, 0)),
    "one-group": ((1, 6, 9, 10), 20, 1, (3, 3), (1, 1), (1, 1, 1, 1)),
}


@pytest.mark.parametrize("jit", ["0", "1"])
@pytest.mark.parametrize("geometry", CHANNELS_LAST_GEOMETRIES.values(), ids=CHANNELS_LAST_GEOMETRIES.keys())
def test_output_channel_groups(library, rng, family, monkeypatch, geometry, jit):
    if family != "avx512" and jit == "0":
        pytest.skip("only AVX-512 compiles")
    monkeypatch.setenv("ORTSPARSE_JIT", jit)
    x_shape, n, groups, kernel, strides, pads = geometry
    for activation in ["none", "sigmoid"]:
        check(
            library,
            rng,
            x_shape,
            n,
            kernel,
            strides=strides,
            pads=pads,
            activation=activation,
            threads=2,
            output_channel_groups=groups,
        )


def test_output_channel_groups_in_block4(library, rng):
    check(library, rng, (1, 8, 12, 13), 12, (3, 3), pads=(1, 1, 1, 1), fmt="block4", output_channel_groups=3)


@pytest.mark.parametrize(
    "groups, residual, expected",
    [
        (5, False, "output_channel_groups = 5 must be 0 (NCHW output) or divide N = 4"),
        (-1, False, "output_channel_groups = -1 must be 0"),
        (2, True, "a residual input cannot be added to output_channel_groups' layout"),
    ],
    ids=["not-dividing", "negative", "with-residual"],
)
def test_bad_output_channel_groups(library, weight_4x3x3x3, groups, residual, expected):
    model = sparse_conv_model(
        [1, 3, 5, 5],
        weight_4x3x3x3,
        "csr",
        WINDOW_3X3,
        residual_shape=[1, 2, 5, 5, 2] if residual else None,
        attributes={"output_channel_groups": groups},
    )
    message = creation_error(model, library)
    assert "SparseConv node 'sc'" in message and expected in message


# ---------------------------------------------------------------------------------------------
# Depthwise prologue: X is the input of a depthwise convolution whose output the 1x1 product
# takes (the rewriter's fuse_depthwise_prologue tests it against ORT on whole blocks).

WINDOW_1X1 = conv_attributes((1, 1), (1, 1), (1, 1), (0, 0, 0, 0))


def depthwise_attributes(channels, kernel=(3, 3), **overrides):
    rng = np.random.default_rng(3)
    attributes = {
        "depthwise_kernel_shape": list(kernel),
        "depthwise_strides": [1, 1],
        "depthwise_dilations": [1, 1],
        "depthwise_pads": [kernel[0] // 2, kernel[1] // 2] * 2,
        "depthwise_weight": numpy_helper.from_array(
            rng.standard_normal((channels, 1, *kernel)).astype(np.float32)
        ),
        "depthwise_bias": numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32)),
        "depthwise_activation": "relu",
    }
    attributes.update(overrides)
    return attributes


def depthwise_reference(x, attributes):
    """The depthwise convolution of x with ``attributes``' weights, bias and relu, in numpy."""
    weight = numpy_helper.to_array(attributes["depthwise_weight"])
    bias = numpy_helper.to_array(attributes["depthwise_bias"])
    kh, kw = weight.shape[2:]
    top, left, bottom, right = attributes["depthwise_pads"]
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h, out_w = padded.shape[2] - kh + 1, padded.shape[3] - kw + 1
    out = np.zeros((x.shape[0], x.shape[1], out_h, out_w), np.float64)
    for i in range(kh):
        for j in range(kw):
            out += weight[None, :, 0, i, j, None, None] * padded[:, :, i : i + out_h, j : j + out_w]
    return np.maximum(out + bias[None, :, None, None], 0).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_shape", [(1, 6, 9, 13), (3, 6, 30, 2)])
def test_depthwise_prologue_feeds_the_product(library, rng, threads, x_shape):
    w = sparse_conv_weight(rng, 10, 6, (1, 1), 0.5)
    attributes = depthwise_attributes(6)
    model = sparse_conv_model([None, 6, None, None], w, "csr", WINDOW_1X1, attributes=attributes)
    x = rng.standard_normal(x_shape).astype(np.float32)
    (y,) = session(model, library, threads).run(None, {"X": x})
    depthwise = depthwise_reference(x, attributes)
    assert_close(y, np.einsum("bchw,nc->bnhw", depthwise, w[:, :, 0, 0]).astype(np.float32))


@pytest.mark.parametrize(
    "attributes, expected",
    [
        (
            {"depthwise_weight": numpy_helper.from_array(np.zeros((6, 1, 3, 3), np.float32))},
            "depthwise_weight must be a float tensor of shape [4, 1, 3, 3], got shape [6, 1, 3, 3]",
        ),
        ({"depthwise_weight": None}, "attribute depthwise_weight (float [C, 1, kH, kW]) is required"),
        ({"depthwise_strides": [0, 1]}, "depthwise_strides = [0, 1] must hold values in [1, 2^31)"),
        ({"depthwise_activation": "tanh"}, "unknown depthwise_activation 'tanh'"),
    ],
    ids=["weight-shape", "no-weight", "stride", "activation"],
)
def test_bad_depthwise_attributes(library, rng, attributes, expected):
    w = sparse_conv_weight(rng, 5, 4, (1, 1), 0.5)
    attrs = {**depthwise_attributes(4), **attributes}
    model = sparse_conv_model([1, 4, 5, 5], w, "csr", WINDOW_1X1, attributes=attrs)
    message = creation_error(model, library)
    assert "SparseConv node 'sc'" in message and expected in message


def test_a_depthwise_prologue_needs_a_pointwise_product(library, weight_4x3x3x3):
    model = sparse_conv_model(
        [1, 3, 5, 5], weight_4x3x3x3, "csr", WINDOW_3X3, attributes=depthwise_attributes(3)
    )
    assert "a depthwise prologue feeds a 1x1 product" in creation_error(model, library)


def test_an_image_smaller_than_the_depthwise_kernel_at_run_time(library, rng):
    w = sparse_conv_weight(rng, 5, 4, (1, 1), 0.5)
    attributes = depthwise_attributes(4, kernel=(5, 5), depthwise_pads=[0, 0, 0, 0])
    model = sparse_conv_model([1, 4, None, None], w, "csr", WINDOW_1X1, attributes=attributes)
    message = run_error(model, library, {"X": np.zeros((1, 4, 3, 9), np.float32)})
    assert "output size 0x5 < 1" in message


# ---------------------------------------------------------------------------------------------
# Pointwise prologue: X is the input of a sparse 1x1 convolution whose output the product takes,
# computed band by band (the rewriter's fuse_pointwise_prologue tests it against ORT on chains).


def pointwise_attributes(rng, k, n, fmt="csr", **overrides):
    w = sparse_conv_weight(rng, n, k, (1, 1), 0.6)
    packed = pack(w[:, :, 0, 0].T, fmt)
    attributes = {
        "pointwise_K": k,
        "pointwise_N": n,
        "pointwise_format": fmt,
        "pointwise_weight_values": numpy_helper.from_array(packed["values"]),
        "pointwise_weight_group_offsets": numpy_helper.from_array(packed["offsets"]),
        "pointwise_weight_input_indices": numpy_helper.from_array(packed["indices"]),
        "pointwise_bias": numpy_helper.from_array(rng.standard_normal(n).astype(np.float32)),
        "pointwise_activation": "relu",
    }
    attributes.update(overrides)
    return w[:, :, 0, 0], attributes


def pointwise_reference(x, w, attributes):
    bias = numpy_helper.to_array(attributes["pointwise_bias"])
    return np.maximum(np.einsum("bkhw,nk->bnhw", x, w) + bias[None, :, None, None], 0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("x_shape", [(1, 7, 9, 13), (3, 7, 40, 2), (2, 7, 2, 3), (1, 7, 70, 33)])
def test_pointwise_prologue_feeds_the_product(library, family, rng, threads, fmt, x_shape):
    w = sparse_conv_weight(rng, 8, 12, (3, 3), 0.6)
    w_p, attributes = pointwise_attributes(rng, 7, 12, fmt)
    model = sparse_conv_model([None, 7, None, None], w, fmt, WINDOW_3X3, attributes=attributes)
    x = rng.standard_normal(x_shape).astype(np.float32)
    (y,) = session(model, library, threads).run(None, {"X": x})
    p = pointwise_reference(x, w_p, attributes).astype(np.float32)
    reference = session(reference_model(list(p.shape), w, WINDOW_3X3))
    assert_close(y, reference.run(None, {"X": p})[0])


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"pointwise_N": 5}, "attribute pointwise_N = 5 must equal C = 4"),
        ({"pointwise_format": "coo"}, "attribute pointwise_format must be 'csr' or 'block4'"),
        ({"pointwise_weight_values": None}, "tensor attribute pointwise_weight_values is required"),
        (
            {"pointwise_weight_input_indices": numpy_helper.from_array(np.zeros(3, np.float32))},
            "pointwise_weight_input_indices must be an int32 tensor of shape [n]",
        ),
        ({"pointwise_K": 2}, "is outside [0, K=2)"),
        ({"pointwise_activation": "tanh"}, "unknown pointwise_activation 'tanh'"),
        (
            {"pointwise_residual_before_activation": 1},
            "a pointwise prologue adds no residual",
        ),
    ],
    ids=["channels", "format", "no-values", "index-type", "index-range", "activation", "residual"],
)
def test_bad_pointwise_attributes(library, rng, overrides, expected):
    w = sparse_conv_weight(rng, 5, 4, (3, 3), 0.5)
    _, attributes = pointwise_attributes(rng, 6, 4, **overrides)
    model = sparse_conv_model([1, 6, 5, 5], w, "csr", WINDOW_3X3, attributes=attributes)
    message = creation_error(model, library)
    assert "SparseConv node 'sc'" in message and expected in message


def test_a_pointwise_prologue_with_a_depthwise_one_is_refused(library, rng):
    w = sparse_conv_weight(rng, 5, 4, (1, 1), 0.5)
    _, attributes = pointwise_attributes(rng, 6, 4)
    model = sparse_conv_model(
        [1, 6, 5, 5], w, "csr", WINDOW_1X1, attributes={**attributes, **depthwise_attributes(4)}
    )
    assert "a pointwise prologue reads X in one part, with no depthwise prologue" in (
        creation_error(model, library)
    )


def test_x_with_other_channels_than_the_pointwise_prologue_takes(library, rng):
    w = sparse_conv_weight(rng, 5, 4, (3, 3), 0.5)
    _, attributes = pointwise_attributes(rng, 6, 4)
    model = sparse_conv_model([1, None, 5, 5], w, "csr", WINDOW_3X3, attributes=attributes)
    message = run_error(model, library, {"X": np.zeros((1, 4, 5, 5), np.float32)})
    assert "X has 4 channels (shape [1, 4, 5, 5]) but attribute pointwise_K is 6" in message
