"""SparseMatMulInteger against MatMulInteger on hand-packed quad4 weights, in every kernel
family, and its error reporting.

INT8 oracle: identical outputs to the exact int32 product (X - x_zero_point) · W
(tests/int8_reference.py), and to ORT's MatMulInteger where ORT is exact on this CPU.
"""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests.op_testing import (
    QUAD_GEMM_CASES,
    assert_exact,
    creation_error,
    pack_quads,
    random_int8_weight,
    run_error,
    session,
)

TYPES = {"u8": (np.uint8, TensorProto.UINT8), "s8": (np.int8, TensorProto.INT8)}
SPARSE_DOMAINS = [("ortsparse", 1)]


def integer_model(node, x_shape, n, elem, initializers, zero_point_input):
    inputs = [helper.make_tensor_value_info("X", elem, x_shape)]
    if zero_point_input:
        inputs.append(helper.make_tensor_value_info("xz", elem, None))
    graph = helper.make_graph(
        [node],
        "g",
        inputs,
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [*x_shape[:-1], n])],
        initializers,
    )
    return newest_model_versions().make_model(graph, SPARSE_DOMAINS).SerializeToString()


def sparse_matmul_integer_model(packed, x_shape, k, n, kind="u8", with_zero_point=True, **attrs):
    """SparseMatMulInteger with x_zero_point as graph input "xz" (when with_zero_point)."""
    inputs = ["X", "values", "offsets", "indices"] + (["xz"] if with_zero_point else [])
    initializers = [
        numpy_helper.from_array(packed[name], name) for name in ("values", "offsets", "indices")
    ]
    attributes = {"K": k, "N": n, "format": "quad4", **attrs}
    node = helper.make_node("SparseMatMulInteger", inputs, ["Y"], domain="ortsparse", **attributes)
    return integer_model(node, x_shape, n, TYPES[kind][1], initializers, with_zero_point)


def matmul_integer_model(weight, x_shape, kind, with_zero_point):
    inputs = ["X", "W"] + (["xz"] if with_zero_point else [])
    node = helper.make_node("MatMulInteger", inputs, ["Y"])
    initializers = [numpy_helper.from_array(weight, "W")]
    return integer_model(
        node, x_shape, weight.shape[1], TYPES[kind][1], initializers, with_zero_point
    )


def check(library, rng, x_shape, n, kind="u8", sparsity=0.8, with_zero_point=True, threads=1):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    k = x_shape[-1]
    weight = random_int8_weight(rng, k, n, sparsity)
    feeds = {"X": rng.integers(info.min, info.max + 1, x_shape).astype(dtype)}
    if with_zero_point:
        feeds["xz"] = np.array(rng.integers(info.min, info.max + 1), dtype)
    reference = matmul_integer_model(weight, list(x_shape), kind, with_zero_point)
    model = sparse_matmul_integer_model(
        pack_quads(weight), list(x_shape), k, n, kind, with_zero_point
    )
    (actual,) = session(model, library, threads).run(None, feeds)
    assert actual.dtype == np.int32
    assert_exact(actual, reference, feeds)


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize("rows, k, n, sparsity", QUAD_GEMM_CASES)
def test_kernel_families(library, rng, quad_family, kind, rows, k, n, sparsity):
    check(library, rng, (rows, k), n, kind, sparsity, threads=2)


@pytest.mark.parametrize("kind", ["u8", "s8"])
def test_without_zero_point(library, rng, kind):
    check(library, rng, (33, 50), 21, kind, with_zero_point=False)


@pytest.mark.parametrize("x_shape", [(2, 3, 36), (1, 1, 5, 8)])
def test_leading_dims(library, rng, x_shape):
    check(library, rng, x_shape, 9)


def test_largest_zero_point_share_stays_exact(library):
    # x = 0 with zero point 255 and every weight -128: the zero point's share, 255 * 128 * K, is
    # the whole sum.
    k, n = 260, 5
    weight = np.full((k, n), -128, np.int8)
    feeds = {"X": np.zeros((3, k), np.uint8), "xz": np.array(255, np.uint8)}
    model = sparse_matmul_integer_model(pack_quads(weight), [3, k], k, n)
    (actual,) = session(model, library).run(None, feeds)
    np.testing.assert_array_equal(actual, np.full((3, n), 255 * 128 * k, np.int32))


# Errors


@pytest.fixture
def packed_8x4(rng):
    return pack_quads(random_int8_weight(rng, 8, 4, 0.5))


def test_per_row_zero_point_at_run_time(library, packed_8x4):
    model = sparse_matmul_integer_model(packed_8x4, [2, 8], 8, 4)
    feeds = {"X": np.zeros((2, 8), np.uint8), "xz": np.zeros(2, np.uint8)}
    message = run_error(model, library, feeds)
    assert "SparseMatMulInteger" in message and "x_zero_point must hold one value" in message


def test_wrong_input_width_at_run_time(library, packed_8x4):
    model = sparse_matmul_integer_model(packed_8x4, [None, None], 8, 4, with_zero_point=False)
    message = run_error(model, library, {"X": np.zeros((2, 7), np.uint8)})
    assert "last dimension is 7" in message and "K is 8" in message


def test_rank_one_input_at_run_time(library, packed_8x4):
    model = sparse_matmul_integer_model(packed_8x4, [None], 8, 4, with_zero_point=False)
    assert "rank >= 2" in run_error(model, library, {"X": np.zeros(8, np.uint8)})


def test_zero_point_of_another_type_is_refused(library, packed_8x4):
    model = onnx.load_from_string(sparse_matmul_integer_model(packed_8x4, [2, 8], 8, 4))
    model.graph.input[1].type.tensor_type.elem_type = TensorProto.INT8
    assert "SparseMatMulInteger" in creation_error(model.SerializeToString(), library)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"format": "csr"}, "format must be 'quad4'"),
        ({"K": 70000}, "K must be in [1, 65536]"),
    ],
)
def test_bad_attributes(library, packed_8x4, change, expected):
    attributes = {"K": 8, **change}
    k = attributes.pop("K")
    model = sparse_matmul_integer_model(packed_8x4, [2, 8], k, 4, **attributes)
    assert expected in creation_error(model, library)


def test_malformed_packed_weights(library, packed_8x4):
    packed = dict(packed_8x4, indices=packed_8x4["indices"] + 5)
    model = sparse_matmul_integer_model(packed, [2, 8], 8, 4)
    assert "outside [0, ceil(K / 4) = 2)" in creation_error(model, library)
