"""Fuzzing the custom ops' input validation (hypothesis): SparseGemm and SparseConv nodes with a
packed weight, attributes or input shape randomly corrupted must either fail with an ORT error or
compute exactly what their packed weight says, never crash or read out of bounds
(tools/test_sanitizers.sh runs this file under ASan and UBSan).

The oracle is the packed formats' contract (docs/ops.md), written out here independently of both
the C++ checks and the rewriter's packer: a node runs if and only if its packing and shapes keep
the contract, and then equals the dense product or convolution of the weight the packing spells.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests.op_testing import assert_close, pack, session

BLOCK = {"csr": 1, "block4": 4}
# What ORT raises for a node it refuses, at creation or at run time.
ORT_ERRORS = tuple(
    getattr(ort.capi.onnxruntime_pybind11_state, name)
    for name in ("Fail", "InvalidArgument", "RuntimeException", "InvalidGraph")
)
EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def keeps_contract(k: int, n: int, fmt: str, packed: dict) -> bool:
    """Whether ``packed`` is a `csr` or `block4` packing of some W [k, n] (docs/ops.md)."""
    values, offsets, indices = packed["values"], packed["offsets"], packed["indices"]
    if k < 1 or n < 1:
        return False
    groups = -(-n // BLOCK[fmt])
    if len(offsets) != groups + 1 or offsets[0] != 0 or offsets[-1] != len(indices):
        return False
    if any(offsets[g + 1] < offsets[g] for g in range(groups)):
        return False
    if len(values) != BLOCK[fmt] * len(indices):
        return False
    for g in range(groups):
        group = indices[offsets[g] : offsets[g + 1]]
        if any(index < 0 or index >= k for index in group):
            return False
        if any(b <= a for a, b in zip(group, group[1:])):
            return False
    return True


def dense(k: int, n: int, fmt: str, packed: dict) -> np.ndarray:
    """The W [k, n] that a contract-keeping ``packed`` spells."""
    block = BLOCK[fmt]
    w = np.zeros((k, -(-n // block) * block), np.float32)
    offsets, indices, values = packed["offsets"], packed["indices"], packed["values"]
    for g in range(len(offsets) - 1):
        for i in range(offsets[g], offsets[g + 1]):
            w[indices[i], g * block : (g + 1) * block] = values[block * i : block * (i + 1)]
    return w[:, :n]


@st.composite
def corrupted_packing(draw, k: int, n: int, fmt: str):
    """A packing of a random sparse W [k, n], then maybe one corruption of its arrays."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight = rng.standard_normal((k, n)).astype(np.float32)
    weight[rng.random((k, n)) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))] = 0
    packed = {name: array.copy() for name, array in pack(weight, fmt).items()}
    kind = draw(st.sampled_from(["none", "values", "offset", "index", "length"]))
    if kind == "values":
        grow = draw(st.integers(-3, 3))
        size = max(0, len(packed["values"]) + grow)
        packed["values"] = np.resize(packed["values"], size).astype(np.float32)
    elif kind in ("offset", "index") and len(packed["offsets" if kind == "offset" else "indices"]):
        name = "offsets" if kind == "offset" else "indices"
        position = draw(st.integers(0, len(packed[name]) - 1))
        limit = k if kind == "index" else len(packed["indices"])
        packed[name][position] = draw(st.integers(-3, limit + 3))
    elif kind == "length":
        name = draw(st.sampled_from(["offsets", "indices"]))
        packed[name] = np.append(packed[name], draw(st.integers(-2, k + 2))).astype(np.int32)
    return packed


def node_model(op_type, x_shape, packed, attributes):
    initializers = [
        numpy_helper.from_array(packed["values"].astype(np.float32), "values"),
        numpy_helper.from_array(packed["offsets"].astype(np.int32), "offsets"),
        numpy_helper.from_array(packed["indices"].astype(np.int32), "indices"),
    ]
    node = helper.make_node(
        op_type, ["X", "values", "offsets", "indices"], ["Y"], domain="ortsparse", **attributes
    )
    graph = helper.make_graph(
        [node],
        "fuzz",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializers,
    )
    return newest_model_versions().make_model(graph, [("ortsparse", 1)]).SerializeToString()


def outcome(model, library, x):
    """The node's output on ``x``, or None when ORT refuses the node or the run with an error."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 4  # refusals are expected: no error lines in the log
    options.register_custom_ops_library(library)
    try:
        refused_or_run = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return refused_or_run.run(None, {"X": x})[0]
    except ORT_ERRORS:
        return None


@st.composite
def gemm_case(draw):
    k, n = draw(st.integers(1, 12)), draw(st.integers(1, 10))
    fmt = draw(st.sampled_from(["csr", "block4"]))
    packed = draw(corrupted_packing(k, n, fmt))
    attribute_k = k + draw(st.sampled_from([0, 0, 0, -1, 1]))
    attribute_n = n + draw(st.sampled_from([0, 0, 0, -1, 1]))
    x_k = k + draw(st.sampled_from([0, 0, 0, 1]))
    rows = draw(st.integers(1, 40))
    return k, n, fmt, packed, attribute_k, attribute_n, (rows, x_k)


@EXAMPLES
@given(case=gemm_case())
def test_sparse_gemm_refuses_or_computes_exactly(library, case):
    k, n, fmt, packed, attribute_k, attribute_n, x_shape = case
    attributes = {"K": attribute_k, "N": attribute_n, "format": fmt}
    model = node_model("SparseGemm", list(x_shape), packed, attributes)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    actual = outcome(model, library, x)
    valid = attribute_k >= 1 and keeps_contract(attribute_k, attribute_n, fmt, packed)
    if not valid or x_shape[-1] != attribute_k:
        assert actual is None, "ORT ran a node that breaks the contract"
        return
    assert actual is not None, "ORT refused a node that keeps the contract"
    assert_close(actual, x @ dense(attribute_k, attribute_n, fmt, packed))


@st.composite
def conv_case(draw):
    c, n = draw(st.integers(1, 5)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    fmt = draw(st.sampled_from(["csr", "block4"]))
    packed = draw(corrupted_packing(c * kh * kw, n, fmt))
    x_channels = c + draw(st.sampled_from([0, 0, 0, 1]))
    height, width = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    pads = draw(st.sampled_from([(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0)]))
    strides = draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
    return c, n, (kh, kw), fmt, packed, (1, x_channels, height, width), pads, strides


def reference_conv(x, w, kernel, pads, strides):
    """ORT's own Conv with the dense weight [N, C, kh, kw]."""
    node = helper.make_node(
        "Conv", ["X", "W"], ["Y"], kernel_shape=list(kernel), pads=list(pads), strides=list(strides)
    )
    graph = helper.make_graph(
        [node],
        "reference",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "W")],
    )
    model = newest_model_versions().make_model(graph)
    return session(model.SerializeToString()).run(None, {"X": x})[0]


@EXAMPLES
@given(case=conv_case())
def test_sparse_conv_refuses_or_computes_exactly(library, case):
    c, n, kernel, fmt, packed, x_shape, pads, strides = case
    k = c * kernel[0] * kernel[1]
    attributes = {
        "K": k,
        "N": n,
        "C": c,
        "format": fmt,
        "kernel_shape": list(kernel),
        "pads": list(pads),
        "strides": list(strides),
    }
    model = node_model("SparseConv", list(x_shape), packed, attributes)
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    actual = outcome(model, library, x)
    fits = all(
        size + pads[axis] + pads[axis + 2] >= kernel[axis] for axis, size in enumerate(x_shape[2:])
    )
    if not keeps_contract(k, n, fmt, packed) or x_shape[1] != c or not fits:
        assert actual is None, "ORT ran a node that breaks the contract"
        return
    assert actual is not None, "ORT refused a node that keeps the contract"
    w = dense(k, n, fmt, packed).T.reshape(n, c, *kernel)
    assert_close(actual, reference_conv(x, w, kernel, pads, strides))
