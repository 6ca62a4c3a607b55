"""SparseQGemm against QLinearMatMul on hand-packed quad4 weights (packing written here,
independently of the rewriter's), in every kernel family, and its error reporting.

INT8 oracle: identical outputs to the exact reference of QLinearMatMul (tests/int8_reference.py),
and to ORT's where ORT is exact on this CPU. SparseQGemm sums exactly in int32 and requantizes
with the float32 scale x_scale * w_scale / y_scale, clamping and rounding half to even, as MLAS
does for QLinearMatMul.

Float output (the form with a float bias): against ORT's float MatMul of the dequantized operands
plus the bias, within float rounding (op_testing.assert_close: 1e-4 of the largest output), since
ORT rounds every float product and partial sum where SparseQGemm scales the exact int32 sum once.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests.op_testing import (
    QUAD_GEMM_CASES,
    assert_close,
    assert_exact,
    creation_error,
    dequantized_product_model,
    pack_quads,
    random_int8_weight,
    run_error,
    session,
)

TYPES = {"u8": (np.uint8, TensorProto.UINT8), "s8": (np.int8, TensorProto.INT8)}
X_SCALE, W_SCALE, Y_SCALE = np.float32(0.04), np.float32(0.015), np.float32(0.5)


def graph_model(node, x_shape, n, elem, initializers, domains, y_elem=None):
    y_shape = [*x_shape[:-1], n]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", elem, x_shape)],
        [helper.make_tensor_value_info("Y", elem if y_elem is None else y_elem, y_shape)],
        initializers,
    )
    return newest_model_versions().make_model(graph, domains).SerializeToString()


def sparse_qgemm_model(
    packed, x_shape, k, n, kind="u8", x_zp=0, y_zp=0, scales=None, bias=None, **attributes
):
    dtype, elem = TYPES[kind]
    scales = np.full(n, (X_SCALE * W_SCALE) / Y_SCALE, np.float32) if scales is None else scales
    inputs = ["X", "values", "offsets", "indices", "scale"] + (["bias"] if bias is not None else [])
    initializers = [
        numpy_helper.from_array(packed["values"], "values"),
        numpy_helper.from_array(packed["offsets"], "offsets"),
        numpy_helper.from_array(packed["indices"], "indices"),
        numpy_helper.from_array(scales, "scale"),
    ] + ([numpy_helper.from_array(bias, "bias")] if bias is not None else [])
    quantized_y = {} if y_zp is None else {"y_zero_point": y_zp}
    attributes = {
        "K": k,
        "N": n,
        "format": "quad4",
        "x_zero_point": x_zp,
        **quantized_y,
        **attributes,
    }
    float_output = bias is not None and bias.dtype == np.float32
    node = helper.make_node("SparseQGemm", inputs, ["Y"], domain="ortsparse", **attributes)
    domains = [("ortsparse", 1)]
    y_elem = TensorProto.FLOAT if float_output else None
    return graph_model(node, x_shape, n, elem, initializers, domains, y_elem)


def qlinear_matmul_model(weight, x_shape, kind, x_zp, y_zp):
    dtype, elem = TYPES[kind]
    node = helper.make_node("QLinearMatMul", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz"], ["Y"])
    initializers = [
        numpy_helper.from_array(np.array(value, dtype=value_type), name)
        for name, value, value_type in [
            ("xs", X_SCALE, np.float32),
            ("xz", x_zp, dtype),
            ("ws", W_SCALE, np.float32),
            ("wz", 0, np.int8),
            ("ys", Y_SCALE, np.float32),
            ("yz", y_zp, dtype),
        ]
    ] + [numpy_helper.from_array(weight, "W")]
    return graph_model(node, x_shape, weight.shape[1], elem, initializers, [])


def dequantized_matmul_model(weight, w_scales, bias, x_shape, kind, x_zp):
    """ORT's float Y = MatMul(DequantizeLinear(X), DequantizeLinear(W)) + bias."""
    dtype, elem = TYPES[kind]
    return dequantized_product_model(
        [
            helper.make_node("MatMul", ["x", "w"], ["p"]),
            helper.make_node("Add", ["p", "B"], ["Y"]),
        ],
        helper.make_tensor_value_info("X", elem, x_shape),
        X_SCALE,
        np.array(x_zp, dtype),
        weight,
        w_scales,
        bias,
    )


def check(library, rng, x_shape, n, kind="u8", sparsity=0.8, threads=1):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    k = x_shape[-1]
    weight = random_int8_weight(rng, k, n, sparsity)
    x_zp, y_zp = (int(rng.integers(info.min, info.max + 1)) for _ in range(2))
    x = rng.integers(info.min, info.max + 1, x_shape).astype(dtype)
    model = sparse_qgemm_model(pack_quads(weight), list(x_shape), k, n, kind, x_zp, y_zp)
    (actual,) = session(model, library, threads).run(None, {"X": x})
    assert_exact(actual, qlinear_matmul_model(weight, list(x_shape), kind, x_zp, y_zp), {"X": x})


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize("rows, k, n, sparsity", QUAD_GEMM_CASES)
def test_kernel_families(library, rng, quad_family, kind, rows, k, n, sparsity):
    check(library, rng, (rows, k), n, kind, sparsity, threads=2)


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize("x_shape, n, sparsity", [((1, 75), 38, 0.9), ((2, 50, 130), 70, 0.7)])
def test_float_output(library, rng, quad_family, kind, x_shape, n, sparsity):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    k = x_shape[-1]
    weight = random_int8_weight(rng, k, n, sparsity)
    w_scales = rng.uniform(0.002, 0.02, n).astype(np.float32)
    bias = rng.uniform(-3, 3, n).astype(np.float32)
    x_zp = int(rng.integers(info.min, info.max + 1))
    x = rng.integers(info.min, info.max + 1, x_shape).astype(dtype)
    reference = dequantized_matmul_model(weight, w_scales, bias, list(x_shape), kind, x_zp)
    (expected,) = session(reference).run(None, {"X": x})
    model = sparse_qgemm_model(
        pack_quads(weight),
        list(x_shape),
        k,
        n,
        kind,
        x_zp,
        y_zp=None,
        scales=(X_SCALE * w_scales).astype(np.float32),
        bias=bias,
    )
    (actual,) = session(model, library, threads=2).run(None, {"X": x})
    assert actual.dtype == np.float32
    assert_close(actual, expected)


@pytest.mark.parametrize("x_shape", [(2, 3, 36), (1, 1, 5, 8)])
def test_leading_dims(library, rng, x_shape):
    check(library, rng, x_shape, 9)


def test_bias_and_output_bounds(library, rng):
    # y = clamp(round((acc - x_zp * colsum + bias) * scale) + y_zp, output_min, output_max)
    k, n, rows = 24, 20, 10
    weight = random_int8_weight(rng, k, n, 0.5)
    bias = rng.integers(-3000, 3000, n).astype(np.int32)
    scales = rng.uniform(0.001, 0.01, n).astype(np.float32)
    x = rng.integers(0, 256, (rows, k)).astype(np.uint8)
    model = sparse_qgemm_model(
        pack_quads(weight),
        [rows, k],
        k,
        n,
        "u8",
        x_zp=7,
        y_zp=100,
        scales=scales,
        bias=bias,
        output_min=90,
        output_max=200,
    )
    (actual,) = session(model, library).run(None, {"X": x})
    acc = (x.astype(np.int64) - 7) @ weight.astype(np.int64) + bias
    scaled = np.clip((acc.astype(np.float32) * scales).astype(np.float32), 90 - 100, 200 - 100)
    expected = (np.rint(scaled).astype(np.int64) + 100).astype(np.uint8)
    np.testing.assert_array_equal(actual, expected)


# Errors


@pytest.fixture
def packed_8x4(rng):
    return pack_quads(random_int8_weight(rng, 8, 4, 0.5))


def test_wrong_input_width_at_run_time(library, packed_8x4):
    model = sparse_qgemm_model(packed_8x4, [None, None], 8, 4)
    message = run_error(model, library, {"X": np.zeros((2, 7), np.uint8)})
    assert "SparseQGemm" in message and "last dimension is 7" in message and "K is 8" in message


def test_rank_one_input_at_run_time(library, packed_8x4):
    model = sparse_qgemm_model(packed_8x4, [None], 8, 4)
    message = run_error(model, library, {"X": np.zeros(8, np.uint8)})
    assert "rank >= 2" in message


def test_float_input_is_refused(library, packed_8x4):
    model = onnx.load_from_string(sparse_qgemm_model(packed_8x4, [2, 8], 8, 4))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.elem_type = TensorProto.FLOAT
    assert "X must be uint8 or int8" in creation_error(model.SerializeToString(), library)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"format": "csr"}, "format must be 'quad4'"),
        ({"x_zero_point": 300}, "x_zero_point = 300 is outside"),
        ({"y_zero_point": -1}, "y_zero_point = -1 is outside"),
        ({"K": 70000}, "K must be in [1, 65536]"),
        ({"output_min": 10, "output_max": 5}, "must be ordered"),
    ],
)
def test_bad_attributes(library, packed_8x4, change, expected):
    attributes = {"K": 8, **change}
    k = attributes.pop("K")
    model = sparse_qgemm_model(packed_8x4, [2, 8], k, 4, **attributes)
    assert expected in creation_error(model, library)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda p: p.update(indices=p["indices"] + 5), "outside [0, ceil(K / 4) = 2)"),
        (lambda p: p.update(values=p["values"][:-1]), "expected 4 per stored quad"),
        (lambda p: p.update(offsets=p["offsets"][:-1]), "expected N + 1 = 5"),
    ],
)
def test_malformed_packed_weights(library, packed_8x4, edit, expected):
    packed = dict(packed_8x4)
    edit(packed)
    assert expected in creation_error(sparse_qgemm_model(packed, [2, 8], 8, 4), library)


def test_nonzero_weight_past_k(library):
    packed = pack_quads(np.ones((6, 2), np.int8))
    packed["values"] = np.ones_like(packed["values"])  # fills features 6 and 7 of the last quad
    message = creation_error(sparse_qgemm_model(packed, [2, 6], 6, 2), library)
    assert "nonzero weight for no input feature" in message


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"y_zero_point": 3}, "attribute y_zero_point quantizes Y, which is float"),
        ({"output_min": 0}, "attribute output_min quantizes Y, which is float"),
        ({"bias": np.array([1, np.inf, 0, 0], np.float32)}, "bias must hold finite values"),
    ],
)
def test_bad_float_output(library, packed_8x4, change, expected):
    arguments = {"y_zp": None, "bias": np.zeros(4, np.float32), **change}
    model = sparse_qgemm_model(packed_8x4, [2, 8], 8, 4, **arguments)
    assert expected in creation_error(model, library)


def test_non_positive_scale(library, packed_8x4):
    model = sparse_qgemm_model(packed_8x4, [2, 8], 8, 4, scales=np.array([1, 0, 1, 1], np.float32))
    assert "positive finite" in creation_error(model, library)
