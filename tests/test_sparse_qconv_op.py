"""SparseQConv against QLinearConv on hand-packed quad4 weights (packing written here,
independently of the rewriter's), in every kernel family, and its error reporting.

INT8 oracle: identical outputs to the exact reference of QLinearConv (tests/int8_reference.py),
and to ORT's where ORT is exact on this CPU. SparseQConv sums exactly in int32 and requantizes with the float32
scale (x_scale * w_scale[n]) / y_scale, clamping and rounding half to even, as MLAS does for
QLinearConv.

Float output (the form with a float bias): against ORT's float Conv of the dequantized operands,
within float rounding (op_testing.assert_close: 1e-4 of the largest output), since ORT rounds every
float product and partial sum where SparseQConv scales the exact int32 sum once.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests.op_testing import (
    assert_close,
    assert_exact,
    creation_error,
    dequantized_product_model,
    pack_conv_quads,
    random_int8_conv_weight,
    run_error,
    session,
)

TYPES = {"u8": (np.uint8, TensorProto.UINT8), "s8": (np.int8, TensorProto.INT8)}
X_SCALE, Y_SCALE = np.float32(0.04), np.float32(0.5)


def graph_model(node, x_shape, elem, initializers, domains, y_elem=None):
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", elem, x_shape)],
        [helper.make_tensor_value_info("Y", elem if y_elem is None else y_elem, None)],
        initializers,
    )
    return newest_model_versions().make_model(graph, domains).SerializeToString()


def sparse_qconv_model(packed, x_shape, c, n, kernel, kind="u8", scales=None, bias=None, **attrs):
    elem = TYPES[kind][1]
    scales = (
        np.full(n, X_SCALE * np.float32(0.01) / Y_SCALE, np.float32) if scales is None else scales
    )
    inputs = ["X", "values", "offsets", "indices", "scale"] + (["bias"] if bias is not None else [])
    initializers = [
        numpy_helper.from_array(packed["values"], "values"),
        numpy_helper.from_array(packed["offsets"], "offsets"),
        numpy_helper.from_array(packed["indices"], "indices"),
        numpy_helper.from_array(scales, "scale"),
    ] + ([numpy_helper.from_array(bias, "bias")] if bias is not None else [])
    node = helper.make_node(
        "SparseQConv",
        inputs,
        ["Y"],
        domain="ortsparse",
        **{"C": c, "N": n, "kernel_shape": list(kernel), "format": "quad4", **attrs},
    )
    domains = [("ortsparse", 1)]
    float_output = bias is not None and bias.dtype == np.float32
    y_elem = TensorProto.FLOAT if float_output else None
    return graph_model(node, x_shape, elem, initializers, domains, y_elem)


def dequantized_conv_model(weight, w_scales, bias, x_shape, kind, x_zp, **attrs):
    """ORT's float Y = Conv(DequantizeLinear(X), DequantizeLinear(W), bias)."""
    dtype, elem = TYPES[kind]
    return dequantized_product_model(
        [helper.make_node("Conv", ["x", "w", "B"], ["Y"], **attrs)],
        helper.make_tensor_value_info("X", elem, x_shape),
        X_SCALE,
        np.array(x_zp, dtype),
        weight,
        w_scales,
        bias,
    )


def qlinear_conv_model(weight, w_scales, bias, x_shape, kind, x_zp, y_zp, **attrs):
    dtype, elem = TYPES[kind]
    inputs = ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz"] + (["B"] if bias is not None else [])
    node = helper.make_node("QLinearConv", inputs, ["Y"], **attrs)
    initializers = (
        [
            numpy_helper.from_array(np.array(value, dtype=value_type), name)
            for name, value, value_type in [
                ("xs", X_SCALE, np.float32),
                ("xz", x_zp, dtype),
                ("ys", Y_SCALE, np.float32),
                ("yz", y_zp, dtype),
            ]
        ]
        + [
            numpy_helper.from_array(weight, "W"),
            numpy_helper.from_array(w_scales, "ws"),
            numpy_helper.from_array(np.zeros(len(w_scales), np.int8), "wz"),
        ]
        + ([numpy_helper.from_array(bias, "B")] if bias is not None else [])
    )
    return graph_model(node, x_shape, elem, initializers, [])


def check(
    library,
    rng,
    x_shape,
    n,
    kernel,
    kind="u8",
    sparsity=0.8,
    threads=1,
    bias=False,
    per_channel=True,
    **attrs,
):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    c = x_shape[1]
    weight = random_int8_conv_weight(rng, (n, c, *kernel), sparsity)
    w_scales = (
        rng.uniform(0.002, 0.02, n).astype(np.float32)
        if per_channel
        else np.full(1, 0.01, np.float32)
    )
    b = rng.integers(-5000, 5000, n).astype(np.int32) if bias else None
    x_zp, y_zp = (int(rng.integers(info.min, info.max + 1)) for _ in range(2))
    x = rng.integers(info.min, info.max + 1, x_shape).astype(dtype)
    reference = qlinear_conv_model(
        weight, w_scales, b, list(x_shape), kind, x_zp, y_zp, kernel_shape=list(kernel), **attrs
    )
    scales = ((X_SCALE * np.broadcast_to(w_scales, n)).astype(np.float32) / Y_SCALE).astype(
        np.float32
    )
    model = sparse_qconv_model(
        pack_conv_quads(weight),
        list(x_shape),
        c,
        n,
        kernel,
        kind,
        scales=scales,
        bias=b,
        x_zero_point=x_zp,
        y_zero_point=y_zp,
        **attrs,
    )
    (actual,) = session(model, library, threads).run(None, {"X": x})
    assert_exact(actual, reference, {"X": x})


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize(
    "x_shape, n, kernel, attrs, sparsity",
    [
        ((1, 16, 9, 9), 24, (1, 1), {}, 0.9),
        ((2, 13, 10, 7), 70, (3, 3), {"pads": [1, 1, 1, 1]}, 0.7),
        ((1, 8, 11, 12), 33, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, 0.5),
        ((1, 3, 20, 20), 16, (7, 7), {"strides": [2, 2], "pads": [3, 3, 3, 3]}, 0.3),
        ((1, 20, 8, 8), 8, (1, 1), {"strides": [2, 2]}, 0.8),
        ((1, 7, 4, 150), 9, (3, 3), {"pads": [1, 1, 1, 1]}, 0.8),
        ((1, 4, 3, 140), 5, (1, 3), {"strides": [1, 2], "pads": [0, 1, 0, 0]}, 0.5),
    ],
)
def test_kernel_families(library, rng, quad_family, kind, x_shape, n, kernel, attrs, sparsity):
    check(library, rng, x_shape, n, kernel, kind, sparsity, threads=2, bias=True, **attrs)


@pytest.mark.parametrize(
    "x_shape, n, kernel, attrs",
    [
        ((1, 5, 7, 9), 7, (3, 3), {"dilations": [2, 2], "pads": [2, 1, 0, 2]}),
        ((3, 6, 9, 9), 12, (3, 1), {"strides": [3, 1], "pads": [0, 0, 1, 0]}),
        ((1, 4, 12, 12), 9, (5, 5), {"strides": [1, 2], "pads": [2, 2, 2, 2]}),
        ((1, 64, 14, 14), 130, (3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 1, 5, 5), 3, (2, 2), {}),
        ((1, 7, 3, 3), 5, (3, 3), {}),
    ],
)
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 1.0])
def test_shapes_and_attributes(library, rng, x_shape, n, kernel, attrs, sparsity):
    check(library, rng, x_shape, n, kernel, "u8", sparsity, threads=2, **attrs)


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize(
    "x_shape, n, kernel, attrs",
    [
        ((1, 16, 9, 9), 24, (1, 1), {}),
        ((2, 13, 10, 7), 70, (3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 8, 11, 12), 33, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ],
)
def test_float_output(library, rng, quad_family, kind, x_shape, n, kernel, attrs):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    c = x_shape[1]
    weight = random_int8_conv_weight(rng, (n, c, *kernel), 0.7)
    w_scales = rng.uniform(0.002, 0.02, n).astype(np.float32)
    bias = rng.uniform(-3, 3, n).astype(np.float32)
    x_zp = int(rng.integers(info.min, info.max + 1))
    x = rng.integers(info.min, info.max + 1, x_shape).astype(dtype)
    reference = dequantized_conv_model(
        weight, w_scales, bias, list(x_shape), kind, x_zp, kernel_shape=list(kernel), **attrs
    )
    (expected,) = session(reference).run(None, {"X": x})
    model = sparse_qconv_model(
        pack_conv_quads(weight),
        list(x_shape),
        c,
        n,
        kernel,
        kind,
        scales=(X_SCALE * w_scales).astype(np.float32),
        bias=bias,
        x_zero_point=x_zp,
        **attrs,
    )
    (actual,) = session(model, library, threads=2).run(None, {"X": x})
    assert actual.dtype == np.float32
    assert_close(actual, expected)


def test_per_tensor_weight_scale_without_bias(library, rng):
    check(library, rng, (2, 10, 6, 6), 20, (3, 3), "s8", 0.8, per_channel=False, pads=[1, 1, 1, 1])


def test_dynamic_image_sizes(library, rng):
    weight = random_int8_conv_weight(rng, (6, 8, 3, 3), 0.5)
    model = sparse_qconv_model(
        pack_conv_quads(weight), [None, 8, None, None], 8, 6, (3, 3), pads=[1, 1, 1, 1]
    )
    sess = session(model, library)
    for height, width in [(5, 5), (9, 4), (5, 5), (16, 3)]:
        x = rng.integers(0, 256, (1, 8, height, width)).astype(np.uint8)
        (y,) = sess.run(None, {"X": x})
        assert y.shape == (1, 6, height, width)


def test_output_bounds(library, rng):
    # A fused Relu raises output_min to the zero point; the output never goes below it.
    weight = random_int8_conv_weight(rng, (8, 4, 3, 3), 0.3)
    model = sparse_qconv_model(
        pack_conv_quads(weight),
        [1, 4, 6, 6],
        4,
        8,
        (3, 3),
        y_zero_point=100,
        output_min=100,
        output_max=180,
    )
    (y,) = session(model, library).run(
        None, {"X": rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)}
    )
    assert y.min() >= 100 and y.max() <= 180 and len(np.unique(y)) > 2


# Errors


@pytest.fixture
def packed_3x3(rng):
    return pack_conv_quads(random_int8_conv_weight(rng, (4, 6, 3, 3), 0.5))


def test_channel_mismatch_at_run_time(library, packed_3x3):
    model = sparse_qconv_model(packed_3x3, [1, None, 5, 5], 6, 4, (3, 3))
    message = run_error(model, library, {"X": np.zeros((1, 5, 5, 5), np.uint8)})
    assert "SparseQConv" in message and "X has 5 channels" in message


def test_image_smaller_than_kernel_at_run_time(library, packed_3x3):
    model = sparse_qconv_model(packed_3x3, [1, 6, None, None], 6, 4, (3, 3))
    message = run_error(model, library, {"X": np.zeros((1, 6, 2, 5), np.uint8)})
    assert "does not fit" in message


def test_float_input_is_refused(library, packed_3x3):
    model = onnx.load_from_string(sparse_qconv_model(packed_3x3, [1, 6, 5, 5], 6, 4, (3, 3)))
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    # ORT refuses it: the op is declared for uint8 and int8 only.
    message = creation_error(model.SerializeToString(), library)
    assert "Type 'tensor(float)' of input parameter (X) of operator (SparseQConv)" in message


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"format": "csr"}, "format must be 'quad4'"),
        ({"group": 2}, "group must be 1"),
        ({"strides": [0, 1]}, "strides"),
        ({"x_zero_point": 300}, "x_zero_point = 300 is outside"),
    ],
)
def test_bad_attributes(library, packed_3x3, change, expected):
    model = sparse_qconv_model(packed_3x3, [1, 6, 5, 5], 6, 4, (3, 3), **change)
    assert expected in creation_error(model, library)


def test_float_output_takes_no_residual(library, packed_3x3):
    model = onnx.load_from_string(
        sparse_qconv_model(packed_3x3, [1, 6, 5, 5], 6, 4, (3, 3), bias=np.zeros(4, np.float32))
    )
    model.graph.node[0].input.append("R")
    model.graph.input.append(helper.make_tensor_value_info("R", TensorProto.FLOAT, [1, 4, 3, 3]))
    message = creation_error(model.SerializeToString(), library)
    assert "a node with a float Y takes none" in message


def test_float_output_has_no_output_zero_point(library, packed_3x3):
    model = sparse_qconv_model(
        packed_3x3, [1, 6, 5, 5], 6, 4, (3, 3), bias=np.zeros(4, np.float32), y_zero_point=0
    )
    assert "y_zero_point quantizes Y, which is float" in creation_error(model, library)


def test_too_many_features(library):
    packed = pack_conv_quads(np.ones((1, 2048, 6, 6), np.int8))
    model = sparse_qconv_model(packed, [1, 2048, 6, 6], 2048, 1, (6, 6))
    assert "int32 sums may overflow" in creation_error(model, library)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda p: p.update(indices=p["indices"] + 10), "outside [0, kH * kW * ceil(C / 4) = 18)"),
        (lambda p: p.update(values=p["values"][:-1]), "expected 4 per stored quad"),
    ],
)
def test_malformed_packed_weights(library, packed_3x3, edit, expected):
    packed = dict(packed_3x3)
    edit(packed)
    assert expected in creation_error(
        sparse_qconv_model(packed, [1, 6, 5, 5], 6, 4, (3, 3)), library
    )


def test_nonzero_weight_in_a_quads_channel_padding(library):
    packed = pack_conv_quads(np.ones((2, 6, 1, 1), np.int8))
    packed["values"] = np.ones_like(packed["values"])  # channels 6 and 7 of the second quad
    message = creation_error(sparse_qconv_model(packed, [1, 6, 4, 4], 6, 2, (1, 1)), library)
    assert "nonzero weight for no input feature" in message
