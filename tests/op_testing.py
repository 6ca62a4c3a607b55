"""What the op-level tests share: packing in the contract's formats (written independently of the
rewriter's packer; quad4 for the INT8 ops), reference activation nodes, ORT's float reference for
the INT8 ops' float output, sessions, the FP32 and INT8 comparisons and error capture.

FP32 tolerance: |Y - Y_ref| <= 1e-4 * max|Y_ref| elementwise (1e-6 absolute when Y_ref is all
zero). Summation order differs from MLAS's and the vectorized activations are accurate to about
1e-6 relative, so real errors sit far below this while any indexing or epilogue mistake is far
above it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests import int8_reference

CLIP_RANGE = (-0.5, 0.75)


def pack(matrix, fmt):
    """W [K, N] in the contract's `csr` or `block4` format (docs/ops.md)."""
    block = 1 if fmt == "csr" else 4
    k, n = matrix.shape
    padded = np.zeros((k, -(-n // block) * block), np.float32)
    padded[:, :n] = matrix
    groups = padded.reshape(k, -1, block).transpose(1, 0, 2)  # [group, K, block]
    stored = np.any(groups != 0, axis=2)  # [group, K]
    group_of_block, indices = np.nonzero(stored)  # row-major: by group, then increasing k
    return {
        "values": groups[group_of_block, indices].reshape(-1).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(stored.sum(axis=1))]).astype(np.int32),
        "indices": indices.astype(np.int32),
    }


def pack_quads(weight):
    """int8 W [K, N] in the contract's quad4 format (docs/ops.md)."""
    k, n = weight.shape
    padded = np.zeros((-(-k // 4) * 4, n), np.int8)
    padded[:k] = weight
    quads = padded.T.reshape(n, -1, 4)  # [channel, quad, 4]
    stored = np.any(quads != 0, axis=2)
    channel, quad = np.nonzero(stored)
    return {
        "values": quads[channel, quad].reshape(-1),
        "offsets": np.concatenate([[0], np.cumsum(stored.sum(axis=1))]).astype(np.int32),
        "indices": quad.astype(np.int32),
    }


# (rows, k, n, sparsity) of the int8 GEMM ops' kernel-family tests: rows below, at and past the
# quad kernels' tile heights, K past a whole number of quads, empty and full weights.
QUAD_GEMM_CASES = [
    (1, 75, 38, 0.9),
    (9, 75, 38, 0.9),
    (17, 64, 16, 0.5),
    (64, 130, 70, 0.9),
    (100, 257, 33, 0.95),
    (40, 96, 40, 0.0),
    (20, 40, 12, 1.0),
]


def random_int8_weight(rng, k, n, sparsity):
    """int8 [k, n] over the whole range, about `sparsity` of it zero (unstructured)."""
    weight = rng.integers(-128, 128, (k, n)).astype(np.int8)
    weight[rng.random((k, n)) < sparsity] = 0
    return weight


def pack_conv_quads(weight):
    """int8 W [N, C, kH, kW] in the contract's quad4 conv order: quad q = tap * ceil(C / 4) + u
    holds channels 4u .. 4u + 3 (zero past C) of tap (i, j) = divmod(tap, kW), which is pack_quads
    of the [kH * kW * C4, N] matrix whose feature tap * C4 + c is channel c at that tap."""
    n, c, kh, kw = weight.shape
    c4 = -(-c // 4) * 4
    padded = np.zeros((n, c4, kh, kw), np.int8)
    padded[:, :c] = weight
    return pack_quads(padded.transpose(2, 3, 1, 0).reshape(kh * kw * c4, n))


def random_int8_conv_weight(rng, shape, sparsity):
    """int8 W [N, C, kH, kW] over the whole range, about `sparsity` of it zero."""
    weight = rng.integers(-128, 128, shape).astype(np.int8)
    weight[rng.random(shape) < sparsity] = 0
    return weight


def activation_nodes(activation, x, y, initializers, alpha=None):
    """Standard ONNX nodes computing `activation` of x into y (initializers appended to)."""
    if activation == "relu":
        return [helper.make_node("Relu", [x], [y])]
    if activation == "clip":
        initializers += [
            numpy_helper.from_array(np.float32(CLIP_RANGE[0]), "clip_min"),
            numpy_helper.from_array(np.float32(CLIP_RANGE[1]), "clip_max"),
        ]
        return [helper.make_node("Clip", [x, "clip_min", "clip_max"], [y])]
    if activation == "gelu":
        return [helper.make_node("Gelu", [x], [y], approximate="none")]
    if activation == "gelu_tanh":
        return [helper.make_node("Gelu", [x], [y], approximate="tanh")]
    if activation == "sigmoid":
        return [helper.make_node("Sigmoid", [x], [y])]
    if activation == "silu":
        return [
            helper.make_node("Sigmoid", [x], ["sigmoid"]),
            helper.make_node("Mul", [x, "sigmoid"], [y]),
        ]
    if activation == "leaky_relu":  # both default to 0.01 when alpha is absent
        return [
            helper.make_node("LeakyRelu", [x], [y], **({} if alpha is None else {"alpha": alpha}))
        ]
    if activation == "hard_swish":
        return [helper.make_node("HardSwish", [x], [y])]
    raise ValueError(activation)


def dequantized_product_model(product_nodes, x, x_scale, x_zero_point, weight, w_scales, bias):
    """ORT's float Y = product_nodes(DequantizeLinear(X) as "x", DequantizeLinear(W) per output
    channel as "w", float bias "B"): what a graph computes that dequantizes a quantized product
    instead of quantizing it again. ``x``: X's value info; W's output channels run along axis 0
    (N, C, kH, kW) or 1 (K, N)."""
    nodes = [
        helper.make_node("DequantizeLinear", ["X", "xs", "xz"], ["x"]),
        helper.make_node(
            "DequantizeLinear", ["W", "ws", "wz"], ["w"], axis=0 if weight.ndim == 4 else 1
        ),
        *product_nodes,
    ]
    initializers = [
        numpy_helper.from_array(np.asarray(x_scale, np.float32), "xs"),
        numpy_helper.from_array(x_zero_point, "xz"),
        numpy_helper.from_array(weight, "W"),
        numpy_helper.from_array(w_scales, "ws"),
        numpy_helper.from_array(np.zeros(len(w_scales), np.int8), "wz"),
        numpy_helper.from_array(bias, "B"),
    ]
    graph = helper.make_graph(
        nodes, "g", [x], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializers
    )
    # onnxruntime 1.32 refuses an s8 product of a 4-D X at opset 21 and on: the Gemm its QDQ
    # optimizer makes of the MatMul quantizes X with a QuantizeLinear whose output_dtype (int8)
    # contradicts the u8 zero point it is given. Opset 20 is the newest it handles.
    versions = newest_model_versions()
    versions = dataclasses.replace(versions, opset=min(versions.opset, 20))
    return versions.make_model(graph).SerializeToString()


def session(model, library=None, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 4  # errors reach the tests as exceptions, not as log lines
    if library is not None:
        options.register_custom_ops_library(library)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def assert_close(actual, expected):
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    tolerance = 1e-4 * scale if scale > 0 else 1e-6
    error = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert error <= tolerance, (
        f"max |error| {error:.3g} > {tolerance:.3g} (max |Y_ref| {scale:.3g})"
    )


def assert_exact(actual, reference_model, feeds):
    """INT8 results must be exact: identical, in dtype, shape and every value, to the exact
    reference's outputs of ``reference_model`` (stock ONNX ops), and where ORT is exact on this
    CPU, to ORT's (tests/int8_reference.py)."""
    (expected,) = int8_reference.expected_outputs(reference_model, feeds)
    int8_reference.assert_identical([actual], [expected], "the exact reference")


def run_error(model, library, feeds):
    with pytest.raises(Exception) as raised:
        session(model, library).run(None, feeds)
    return str(raised.value)


def creation_error(model, library):
    with pytest.raises(Exception) as raised:
        session(model, library)
    return str(raised.value)
