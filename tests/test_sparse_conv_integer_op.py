"""SparseConvInteger against ConvInteger on hand-packed quad4 conv weights, in every kernel
family, and its error reporting.

INT8 oracle: identical outputs to the exact int32 convolution of X - x_zero_point (padding
included: it holds the zero point) with W (tests/int8_reference.py), and to ORT's ConvInteger
where ORT is exact on this CPU.
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

TYPES = {"u8": (np.uint8, TensorProto.UINT8), "s8": (np.int8, TensorProto.INT8)}
SPARSE_DOMAINS = [("ortsparse", 1)]


def integer_model(node, x_shape, elem, initializers, zero_point_input):
    inputs = [helper.make_tensor_value_info("X", elem, x_shape)]
    if zero_point_input:
        inputs.append(helper.make_tensor_value_info("xz", elem, None))
    graph = helper.make_graph(
        [node],
        "g",
        inputs,
        [helper.make_tensor_value_info("Y", TensorProto.INT32, None)],
        initializers,
    )
    return newest_model_versions().make_model(graph, SPARSE_DOMAINS).SerializeToString()


def sparse_conv_integer_model(
    packed, x_shape, c, n, kernel, kind="u8", with_zero_point=True, **attrs
):
    """SparseConvInteger with x_zero_point as graph input "xz" (when with_zero_point)."""
    inputs = ["X", "values", "offsets", "indices"] + (["xz"] if with_zero_point else [])
    initializers = [
        numpy_helper.from_array(packed[name], name) for name in ("values", "offsets", "indices")
    ]
    attributes = {"C": c, "N": n, "kernel_shape": list(kernel), "format": "quad4", **attrs}
    node = helper.make_node("SparseConvInteger", inputs, ["Y"], domain="ortsparse", **attributes)
    return integer_model(node, x_shape, TYPES[kind][1], initializers, with_zero_point)


def conv_integer_model(weight, x_shape, kind, with_zero_point, **attrs):
    inputs = ["X", "W"] + (["xz"] if with_zero_point else [])
    node = helper.make_node("ConvInteger", inputs, ["Y"], **attrs)
    initializers = [numpy_helper.from_array(weight, "W")]
    return integer_model(node, x_shape, TYPES[kind][1], initializers, with_zero_point)


def check(
    library,
    rng,
    x_shape,
    n,
    kernel,
    kind="u8",
    sparsity=0.8,
    with_zero_point=True,
    threads=1,
    **attrs,
):
    dtype = TYPES[kind][0]
    info = np.iinfo(dtype)
    c = x_shape[1]
    weight = random_int8_conv_weight(rng, (n, c, *kernel), sparsity)
    feeds = {"X": rng.integers(info.min, info.max + 1, x_shape).astype(dtype)}
    if with_zero_point:
        feeds["xz"] = np.array(rng.integers(info.min, info.max + 1), dtype)
    reference = conv_integer_model(weight, list(x_shape), kind, with_zero_point, **attrs)
    model = sparse_conv_integer_model(
        pack_conv_quads(weight), list(x_shape), c, n, kernel, kind, with_zero_point, **attrs
    )
    (actual,) = session(model, library, threads).run(None, feeds)
    assert actual.dtype == np.int32
    assert_exact(actual, reference, feeds)


@pytest.mark.parametrize("kind", ["u8", "s8"])
@pytest.mark.parametrize(
    "x_shape, n, kernel, attrs, sparsity",
    [
        ((1, 16, 9, 9), 24, (1, 1), {}, 0.9),
        ((2, 13, 10, 7), 70, (3, 3), {"pads": [1, 1, 1, 1]}, 0.7),
        ((1, 8, 11, 12), 33, (3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}, 0.5),
        ((1, 5, 7, 9), 7, (3, 3), {"dilations": [2, 2], "pads": [2, 1, 0, 2]}, 0.6),
        ((1, 20, 8, 8), 8, (1, 1), {"strides": [2, 2]}, 0.8),
        ((1, 7, 4, 150), 9, (3, 3), {"pads": [1, 1, 1, 1]}, 1.0),
    ],
)
def test_kernel_families(library, rng, quad_family, kind, x_shape, n, kernel, attrs, sparsity):
    check(library, rng, x_shape, n, kernel, kind, sparsity, threads=2, **attrs)


@pytest.mark.parametrize("kind", ["u8", "s8"])
def test_without_zero_point(library, rng, kind):
    check(library, rng, (1, 6, 7, 7), 10, (3, 3), kind, with_zero_point=False, pads=[1, 1, 1, 1])


# Errors


@pytest.fixture
def packed_3x3(rng):
    return pack_conv_quads(random_int8_conv_weight(rng, (4, 8, 3, 3), 0.5))


def test_per_channel_zero_point_at_run_time(library, packed_3x3):
    model = sparse_conv_integer_model(packed_3x3, [1, 8, 5, 5], 8, 4, (3, 3))
    feeds = {"X": np.zeros((1, 8, 5, 5), np.uint8), "xz": np.zeros(8, np.uint8)}
    message = run_error(model, library, feeds)
    assert "SparseConvInteger" in message and "x_zero_point must hold one value" in message


def test_channel_mismatch_at_run_time(library, packed_3x3):
    model = sparse_conv_integer_model(
        packed_3x3, [1, None, 5, 5], 8, 4, (3, 3), with_zero_point=False
    )
    message = run_error(model, library, {"X": np.zeros((1, 7, 5, 5), np.uint8)})
    assert "attribute C is 8" in message


def test_zero_point_of_another_type_is_refused(library, packed_3x3):
    model = onnx.load_from_string(sparse_conv_integer_model(packed_3x3, [1, 8, 5, 5], 8, 4, (3, 3)))
    model.graph.input[1].type.tensor_type.elem_type = TensorProto.INT8
    assert "SparseConvInteger" in creation_error(model.SerializeToString(), library)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"format": "csr"}, "format must be 'quad4'"),
        ({"group": 2}, "attribute group must be 1"),
    ],
)
def test_bad_attributes(library, packed_3x3, change, expected):
    model = sparse_conv_integer_model(packed_3x3, [1, 8, 5, 5], 8, 4, (3, 3), **change)
    assert expected in creation_error(model, library)
