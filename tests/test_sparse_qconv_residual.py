"""SparseQConv with a fused residual Add (input R) against the QDQ graph it replaces:
QLinearConv -> DequantizeLinear, DequantizeLinear(R) -> Add -> QuantizeLinear, which ORT runs as
QLinearConv and QLinearAdd.

INT8 oracle: identical outputs to the exact reference (tests/int8_reference.py: the convolution
exact in numpy, the QLinearAdd run by ORT), and to ORT's where ORT is exact on this CPU. The op computes the Add as MLAS's x86-64 QLinearAdd does (both
operands scaled by fused multiply-adds onto one constant, a single rounding half to even), so no
rounding order differs. The scales and zero points below are drawn at random, both zero points of
the Add's operands nonzero, so that the constant's own rounding is exercised too.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests.op_testing import (
    assert_exact,
    creation_error,
    pack_conv_quads,
    random_int8_conv_weight,
    run_error,
    session,
)
from tests.test_sparse_qconv_op import TYPES, X_SCALE

SPARSE_DOMAINS = [("ortsparse", 1)]


def add_quantization(rng, kind):
    """(scale, zero point) of the Add's conv operand, of R and of the sum."""
    info = np.iinfo(TYPES[kind][0])
    return [
        (
            np.float32(rng.uniform(0.02, 0.3)),
            int(rng.integers(info.min + 20, info.max - 20)),
        )
        for _ in range(3)
    ]


def reference_model(
    weight,
    w_scales,
    x_shape,
    y_shape,
    kind,
    x_zp,
    quantization,
    residual_first,
    **attrs,
):
    """QLinearConv to the conv operand's quantization, then the QDQ residual Add."""
    dtype, elem = TYPES[kind]
    (a_scale, a_zp), (r_scale, r_zp), (sum_scale, sum_zp) = quantization
    constants = {
        "xs": np.float32(X_SCALE),
        "xz": dtype(x_zp),
        "W": weight,
        "ws": w_scales,
        "wz": np.zeros(len(w_scales), np.int8),
        "as": a_scale,
        "az": dtype(a_zp),
        "rs": r_scale,
        "rz": dtype(r_zp),
        "ss": sum_scale,
        "sz": dtype(sum_zp),
    }
    add_inputs = ["R_float", "A_float"] if residual_first else ["A_float", "R_float"]
    nodes = [
        helper.make_node(
            "QLinearConv",
            ["X", "xs", "xz", "W", "ws", "wz", "as", "az"],
            ["A"],
            **attrs,
        ),
        helper.make_node("DequantizeLinear", ["A", "as", "az"], ["A_float"]),
        helper.make_node("DequantizeLinear", ["R", "rs", "rz"], ["R_float"]),
        helper.make_node("Add", add_inputs, ["S"]),
        helper.make_node("QuantizeLinear", ["S", "ss", "sz"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("X", elem, x_shape),
            helper.make_tensor_value_info("R", elem, y_shape),
        ],
        [helper.make_tensor_value_info("Y", elem, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
    )
    return newest_model_versions().make_model(graph).SerializeToString()


def residual_model(packed, x_shape, y_shape, c, n, kernel, kind, scales, residual=True, **attrs):
    elem = TYPES[kind][1]
    initializers = [
        numpy_helper.from_array(packed["values"], "values"),
        numpy_helper.from_array(packed["offsets"], "offsets"),
        numpy_helper.from_array(packed["indices"], "indices"),
        numpy_helper.from_array(scales, "scale"),
    ]
    inputs = ["X", "values", "offsets", "indices", "scale", "", "R"][: 7 if residual else 5]
    node = helper.make_node(
        "SparseQConv",
        inputs,
        ["Y"],
        domain="ortsparse",
        **{"C": c, "N": n, "kernel_shape": list(kernel), "format": "quad4", **attrs},
    )
    graph_inputs = [helper.make_tensor_value_info("X", elem, x_shape)]
    if residual:
        graph_inputs.append(helper.make_tensor_value_info("R", elem, y_shape))
    graph = helper.make_graph(
        [node],
        "g",
        graph_inputs,
        [helper.make_tensor_value_info("Y", elem, None)],
        initializers,
    )
    return newest_model_versions().make_model(graph, SPARSE_DOMAINS).SerializeToString()


def residual_attributes(quantization, residual_first):
    a, r, total = quantization
    operands = [r, a] if residual_first else [a, r]
    return {
        "add_scales": [float(operands[0][0]), float(operands[1][0]), float(total[0])],
        "add_zero_points": [operands[0][1], operands[1][1], total[1]],
        "residual_input": 0 if residual_first else 1,
    }


def conv_output_shape(x_shape, n, kernel, attrs):
    pads = attrs.get("pads", [0, 0, 0, 0])
    strides = attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    spatial = [
        (x_shape[2 + axis] + pads[axis] + pads[axis + 2] - dilations[axis] * (kernel[axis] - 1) - 1)
        // strides[axis]
        + 1
        for axis in range(2)
    ]
    return [x_shape[0], n, *spatial]


def check(library, rng, x_shape, n, kernel, kind, residual_first=False, threads=2, **attrs):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    c = x_shape[1]
    weight = random_int8_conv_weight(rng, (n, c, *kernel), 0.8)
    w_scales = rng.uniform(0.002, 0.02, n).astype(np.float32)
    x_zp = int(rng.integers(info.min, info.max + 1))
    quantization = add_quantization(rng, kind)
    y_shape = conv_output_shape(x_shape, n, kernel, attrs)
    x = rng.integers(info.min, info.max + 1, x_shape).astype(dtype)
    r = rng.integers(info.min, info.max + 1, y_shape).astype(dtype)
    reference = reference_model(
        weight,
        w_scales,
        list(x_shape),
        y_shape,
        kind,
        x_zp,
        quantization,
        residual_first,
        kernel_shape=list(kernel),
        **attrs,
    )
    # The conv operand's requantization, as QLinearConv computes its scale.
    scales = ((X_SCALE * w_scales).astype(np.float32) / quantization[0][0]).astype(np.float32)
    model = residual_model(
        pack_conv_quads(weight),
        list(x_shape),
        y_shape,
        c,
        n,
        kernel,
        kind,
        scales,
        x_zero_point=x_zp,
        y_zero_point=quantization[0][1],
        **residual_attributes(quantization, residual_first),
        **attrs,
    )
    (actual,) = session(model, library, threads).run(None, {"X": x, "R": r})
    assert_exact(actual, reference, {"X": x, "R": r})
    return actual


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize("residual_first", [False, True])
@pytest.mark.parametrize(
    "x_shape, n, kernel, attrs",
    [
        ((1, 16, 9, 9), 24, (1, 1), {}),
        ((2, 13, 10, 7), 70, (3, 3), {"pads": [1, 1, 1, 1]}),
        ((1, 8, 11, 12), 33, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ((1, 64, 7, 7), 40, (1, 1), {}),
        # Output rows of at least 64 pixels: the output stage takes whole 64-row blocks.
        ((1, 6, 3, 130), 20, (3, 3), {"pads": [1, 1, 1, 1]}),
    ],
)
def test_matches_ort(library, rng, quad_family, kind, residual_first, x_shape, n, kernel, attrs):
    check(library, rng, x_shape, n, kernel, kind, residual_first, **attrs)


def test_many_scales(library, rng):
    # The constant that holds the three zero points rounds differently for different scales;
    # a few hundred draws find any mismatch in how it is formed.
    for _ in range(30):
        check(library, rng, (1, 8, 6, 6), 8, (3, 3), "u8", threads=1, pads=[1, 1, 1, 1])


@pytest.mark.parametrize(
    "image, kernel, pads",
    [
        # Whole tiles, requantized by the tile kernels where the family has them.
        ((4, 4), (1, 1), [0, 0, 0, 0]),
        # Output rows of at least 64 pixels, in the output stage's 64-row blocks.
        ((2, 130), (3, 3), [1, 1, 1, 1]),
    ],
)
def test_saturates(library, rng, quad_family, image, kernel, pads):
    # A sum scale far below the operands' sends most outputs past the type's range.
    weight = random_int8_conv_weight(rng, (8, 8, *kernel), 0.5)
    quantization = [
        (np.float32(0.5), 10),
        (np.float32(0.5), 200),
        (np.float32(0.01), 128),
    ]
    shape = [1, 8, *image]
    x = rng.integers(0, 256, shape).astype(np.uint8)
    r = rng.integers(0, 256, shape).astype(np.uint8)
    scales = np.full(8, 0.01, np.float32)
    model = residual_model(
        pack_conv_quads(weight),
        shape,
        shape,
        8,
        8,
        kernel,
        "u8",
        scales,
        x_zero_point=0,
        y_zero_point=10,
        pads=pads,
        **residual_attributes(quantization, False),
    )
    (y,) = session(model, library).run(None, {"X": x, "R": r})
    assert set(np.unique(y)) >= {0, 255}


# Errors

QUANTIZATION = [(np.float32(0.1), 3), (np.float32(0.2), 5), (np.float32(0.3), 7)]
WELL_FORMED = residual_attributes(QUANTIZATION, residual_first=False)


def small_model(rng, y_shape=(1, 8, 4, 4), residual=True, **attributes):
    """A 1x1 SparseQConv of 8 channels on 4x4 uint8 images, R declared of y_shape."""
    packed = pack_conv_quads(random_int8_conv_weight(rng, (8, 8, 1, 1), 0.5))
    scales = np.full(8, 0.01, np.float32)
    return residual_model(
        packed, [1, 8, 4, 4], list(y_shape), 8, 8, (1, 1), "u8", scales, residual, **attributes
    )


def test_residual_shape_mismatch_at_run_time(library, rng):
    model = small_model(rng, y_shape=(1, 8, None, None), **WELL_FORMED)
    feeds = {"X": np.zeros((1, 8, 4, 4), np.uint8), "R": np.zeros((1, 8, 4, 5), np.uint8)}
    assert "R has shape [1, 8, 4, 5], expected Y's [1, 8, 4, 4]" in run_error(model, library, feeds)


def test_residual_type_mismatch(library, rng):
    proto = onnx.load_from_string(small_model(rng, **WELL_FORMED))
    proto.graph.input[1].type.tensor_type.elem_type = TensorProto.INT8  # X stays uint8
    message = creation_error(proto.SerializeToString(), library)
    assert "no kernel def matches node inputs for Op: SparseQConv" in message


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"add_scales": [0.1, 0.2]}, "must each hold 3 values"),
        ({"add_scales": [0.1, -0.2, 0.3]}, "add_scales must hold positive finite values"),
        (
            {"add_zero_points": [1, 2, 300]},
            "add_zero_points must lie within the range of X's type [0, 255]",
        ),
        ({"residual_input": 2}, "residual_input (which operand of the Add R is) must be 0 or 1"),
        ({"residual_input": None}, "residual_input (which operand of the Add R is) must be 0 or 1"),
    ],
)
def test_malformed_residual_attributes(library, rng, change, expected):
    attributes = {**WELL_FORMED, **change}
    attributes = {name: value for name, value in attributes.items() if value is not None}
    assert expected in creation_error(small_model(rng, **attributes), library)


def test_residual_attributes_without_r(library, rng):
    model = small_model(rng, residual=False, **WELL_FORMED)
    assert "which the node does not have" in creation_error(model, library)
