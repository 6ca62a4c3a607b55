"""Op-level tests of SparseGemm (docs/ops.md) against ORT's own dense operators.

Every case builds one graph with a SparseGemm node and the equivalent standard graph
(MatMul, Add, activation ops, Add) and runs both in ONNX Runtime: ORT is the oracle.

FP32 tolerance: |Y - Y_ref| <= 1e-4 * max|Y_ref| elementwise (tests/op_testing.py says why).
"""

from __future__ import annotations

import concurrent.futures
import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import newest_model_versions

from tests.op_testing import (
    CLIP_RANGE,
    activation_nodes,
    assert_close,
    creation_error,
    pack,
    run_error,
    session,
)

ACTIVATIONS = ["none", "relu", "clip", "gelu", "gelu_tanh", "sigmoid", "silu"]


# ---------------------------------------------------------------------------------------------
# Weights


def sparse_weight(rng, k, n, sparsity, zero_channels=()):
    """Random W [K, N] with about `sparsity` of its entries zero and the given columns all zero."""
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[rng.random((k, n)) < sparsity] = 0.0
    w[:, list(zero_channels)] = 0.0
    return w


# ---------------------------------------------------------------------------------------------
# Graphs


def sparse_gemm_model(
    x_shape,
    packed,
    k,
    n,
    fmt,
    *,
    bias=None,
    residual_shape=None,
    activation="none",
    residual_before=0,
    weights_as_inputs=False,
    bias_as_input=False,
    attributes=None,
):
    """A model computing SparseGemm(X, packed W [, bias] [, residual]) -> Y."""
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    initializers = []
    weight_inputs = [
        ("weight_values", packed["values"]),
        ("weight_group_offsets", packed["offsets"]),
        ("weight_input_indices", packed["indices"]),
    ]
    for name, array in weight_inputs:
        if weights_as_inputs:
            elem = TensorProto.FLOAT if array.dtype == np.float32 else TensorProto.INT32
            inputs.append(helper.make_tensor_value_info(name, elem, list(array.shape)))
        else:
            initializers.append(numpy_helper.from_array(array, name))
    node_inputs = ["X"] + [name for name, _ in weight_inputs]
    node_inputs.append("" if bias is None else "bias")
    if bias is not None:
        if bias_as_input:
            inputs.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, [None]))
        else:
            initializers.append(numpy_helper.from_array(bias, "bias"))
    if residual_shape is not None:
        node_inputs.append("residual")
        inputs.append(helper.make_tensor_value_info("residual", TensorProto.FLOAT, residual_shape))
    while node_inputs[-1] == "":
        node_inputs.pop()

    attrs = dict(K=k, N=n, format=fmt, activation=activation, residual_before_activation=residual_before)
    if activation == "clip":
        attrs.update(clip_min=CLIP_RANGE[0], clip_max=CLIP_RANGE[1])
    attrs.update(attributes or {})
    attrs = {key: value for key, value in attrs.items() if value is not None}
    node = helper.make_node("SparseGemm", node_inputs, ["Y"], domain="ortsparse", name="sg", **attrs)
    graph = helper.make_graph(
        [node], "sparse_gemm", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializers
    )
    return newest_model_versions().make_model(graph, [("ortsparse", 1)]).SerializeToString()


def reference_model(x_shape, w, *, bias=None, residual_shape=None, activation="none", residual_before=0, affine=None):
    """The same computation with standard ONNX operators; with affine (scale, shift), a Mul and
    an Add after the activation."""
    nodes = [helper.make_node("MatMul", ["X", "W"], ["acc"])]
    initializers = [numpy_helper.from_array(w, "W")]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    current = "acc"

    def add(name, other):
        nonlocal current
        nodes.append(helper.make_node("Add", [current, other], [name]))
        current = name

    if bias is not None:
        initializers.append(numpy_helper.from_array(bias, "bias"))
        add("biased", "bias")
    if residual_shape is not None:
        inputs.append(helper.make_tensor_value_info("residual", TensorProto.FLOAT, residual_shape))
        if residual_before:
            add("with_residual", "residual")
    if activation != "none":
        nodes += activation_nodes(activation, current, "activated", initializers)
        current = "activated"
    if affine is not None:
        initializers += [numpy_helper.from_array(affine[0], "scale"), numpy_helper.from_array(affine[1], "shift")]
        nodes.append(helper.make_node("Mul", [current, "scale"], ["scaled"]))
        current = "scaled"
        add("shifted", "shift")
    if residual_shape is not None and not residual_before:
        add("with_residual", "residual")
    nodes.append(helper.make_node("Identity", [current], ["Y"]))
    graph = helper.make_graph(
        nodes, "reference", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], initializers
    )
    return newest_model_versions().make_model(graph).SerializeToString()


# ---------------------------------------------------------------------------------------------
# Comparison


def check(
    library,
    rng,
    x_shape,
    n,
    *,
    fmt="csr",
    sparsity=0.9,
    zero_channels=(),
    with_bias=True,
    with_residual=False,
    activation="none",
    residual_before=0,
    threads=1,
    single_thread=0,
    output_affine=False,
):
    """Runs SparseGemm and its reference on random data and compares them; with output_affine,
    random output_scale and output_shift attributes."""
    k = x_shape[-1]
    w = sparse_weight(rng, k, n, sparsity, zero_channels)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    y_shape = list(x_shape[:-1]) + [n]
    residual_shape = y_shape if with_residual else None
    feeds = {"X": rng.standard_normal(x_shape).astype(np.float32)}
    if with_residual:
        feeds["residual"] = rng.standard_normal(y_shape).astype(np.float32)

    common = dict(bias=bias, residual_shape=residual_shape, activation=activation, residual_before=residual_before)
    attributes = {"single_thread": single_thread} if single_thread else {}
    affine = None
    if output_affine:
        affine = (rng.uniform(0.5, 2.0, n).astype(np.float32), rng.standard_normal(n).astype(np.float32))
        attributes.update(output_scale=numpy_helper.from_array(affine[0]), output_shift=numpy_helper.from_array(affine[1]))
    model = sparse_gemm_model(list(x_shape), pack(w, fmt), k, n, fmt, **common, attributes=attributes or None)
    actual = session(model, library, threads).run(None, feeds)[0]
    reference = reference_model(list(x_shape), w, **common, affine=affine)
    expected = session(reference, threads=threads).run(None, feeds)[0]
    assert_close(actual, expected)


# ---------------------------------------------------------------------------------------------
# Numerics


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize(
    "x_shape, n",
    [
        ((1, 1), 1),
        ((1, 17), 3),
        ((3, 63), 17),
        ((17, 3), 63),
        ((63, 100), 33),
        ((64, 128), 64),
        ((65, 70), 18),
        ((2, 5, 48), 31),
        ((2, 3, 4, 40), 21),
        ((1000, 63), 17),
        ((130, 1000), 61),
    ],
)
def test_shapes(library, rng, x_shape, n, fmt):
    check(library, rng, x_shape, n, fmt=fmt, with_residual=True)


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("rows", [1, 40])
def test_sparsity(library, rng, sparsity, fmt, rows):
    check(library, rng, (rows, 96), 70, fmt=fmt, sparsity=sparsity)


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("rows", [1, 50])
def test_all_zero_output_channels(library, rng, fmt, rows):
    # Channels 4..7 form a whole empty block4 group; 0, 13 and 29 leave partial groups.
    check(library, rng, (rows, 64), 30, fmt=fmt, zero_channels=[0, 4, 5, 6, 7, 13, 29], activation="gelu")


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("residual_before", [0, 1])
def test_activations(library, rng, activation, residual_before, fmt):
    check(
        library,
        rng,
        (37, 80),
        45,
        fmt=fmt,
        with_residual=True,
        activation=activation,
        residual_before=residual_before,
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations_on_row_kernels(library, rng, activation):
    check(library, rng, (1, 80), 45, with_residual=True, activation=activation)


def exact_activation(activation, x):
    """Float64 references, in forms that do not cancel in the negative tails."""
    x = x.astype(np.float64)
    if activation == "gelu":
        return 0.5 * x * np.vectorize(math.erfc)(-x / math.sqrt(2))
    if activation == "gelu_tanh":
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return x / (1 + np.exp(-2 * u))
    if activation == "sigmoid":
        with np.errstate(over="ignore"):
            return 1 / (1 + np.exp(-x))
    if activation == "silu":
        with np.errstate(over="ignore"):
            return x / (1 + np.exp(-x))
    raise ValueError(activation)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "sigmoid", "silu"])
@pytest.mark.parametrize("path", ["row", "tile"])
def test_activation_accuracy(library, family, activation, path):
    # act(v) over the activations' whole useful range, against float64: relative error within 4e-6,
    # plus 1e-12 absolute for the Gelus' far negative tails (below 1e-8 in magnitude), where float
    # rounding of v, amplified by e^(-v^2/2), alone exceeds that. The row path gets v as weights of
    # one row, the tile path as rows of X. Sigmoid and SiLU also get inputs far past where e^(-v)
    # overflows or vanishes: 0 and v there, never v / FLT_MAX or NaN.
    v = np.linspace(-16, 16, 4001, dtype=np.float32)
    if activation in ("sigmoid", "silu"):
        v = np.concatenate([v, np.float32([-1e30, -1e6, -100, -88.5, 88.5, 100, 1e6, 1e30])])
    if path == "row":
        x, w = np.ones((1, 1), np.float32), v.reshape(1, -1)
    else:
        x, w = v.reshape(-1, 1), np.ones((1, 1), np.float32)
    model = sparse_gemm_model(list(x.shape), pack(w, "csr"), 1, w.shape[1], "csr", activation=activation)
    y = session(model, library).run(None, {"X": x})[0].astype(np.float64).reshape(-1)
    expected = exact_activation(activation, v)
    assert np.all(np.abs(y - expected) <= 4e-6 * np.abs(expected) + 1e-12)


@pytest.mark.parametrize("with_residual", [False, True])
def test_without_bias(library, rng, with_residual):
    check(library, rng, (20, 50), 40, with_bias=False, with_residual=with_residual, activation="relu")


@pytest.mark.parametrize("single_thread", [0, 1])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [1, 3, 64, 200])
def test_threads(library, rng, threads, rows, single_thread):
    # single_thread=1 runs every task on the calling thread, whatever the pool's size.
    check(
        library, rng, (rows, 300), 260, threads=threads, with_residual=True, activation="silu",
        single_thread=single_thread,
    )


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize(
    "rows, k, n, sparsity",
    [
        (1, 75, 38, 0.9),
        (2, 75, 38, 0.9),
        (3, 75, 38, 0.9),
        (8, 75, 38, 0.9),
        (9, 75, 38, 0.9),
        (17, 75, 38, 0.9),
        (33, 75, 38, 0.9),
        (50, 75, 38, 0.9),
        (64, 75, 38, 0.9),
        (100, 75, 38, 0.9),
        # Long enough groups for CSR to split its input features into blocks in every family.
        (40, 1100, 40, 0.5),
    ],
)
def test_kernel_families(library, rng, family, fmt, rows, k, n, sparsity):
    check(library, rng, (rows, k), n, fmt=fmt, sparsity=sparsity, with_residual=True, activation="gelu", threads=2)


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("rows", [1, 3, 50])
@pytest.mark.parametrize("residual_before", [None, 0, 1])
def test_output_affine_in_each_family(library, rng, family, fmt, rows, residual_before):
    check(
        library,
        rng,
        (rows, 75),
        38,
        fmt=fmt,
        with_residual=residual_before is not None,
        residual_before=residual_before or 0,
        activation="hard_swish" if rows > 1 else "relu",
        output_affine=True,
        threads=2,
    )


@pytest.mark.parametrize("fmt", ["csr", "block4"])
@pytest.mark.parametrize("rows", [1, 20])
def test_more_input_features_than_16_bit_indices(library, rng, fmt, rows):
    # Weight indices are 16 bits: K > 65536 needs several blocks on the tile path, and sends even
    # single rows there.
    check(library, rng, (rows, 70001), 6, fmt=fmt, sparsity=0.99)


def test_concurrent_runs_share_one_kernel(library, rng):
    # ORT may run one session from several threads at once: the kernel keeps no per-call state.
    w = sparse_weight(rng, 200, 150, 0.9)
    model = sparse_gemm_model([None, 200], pack(w, "csr"), 200, 150, "csr", activation="relu")
    sess = session(model, library, threads=2)
    inputs = [rng.standard_normal((rows, 200)).astype(np.float32) for rows in (1, 2, 70, 130) * 4]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda x: sess.run(None, {"X": x})[0], inputs))
    for x, y in zip(inputs, outputs):
        assert_close(y, np.maximum(x @ w, 0))


def test_bias_given_at_run_time(library, rng):
    w = sparse_weight(rng, 16, 8, 0.5)
    bias = rng.standard_normal(8).astype(np.float32)
    x = rng.standard_normal((5, 16)).astype(np.float32)
    model = sparse_gemm_model([5, 16], pack(w, "csr"), 16, 8, "csr", bias=bias, bias_as_input=True)
    y = session(model, library).run(None, {"X": x, "bias": bias})[0]
    assert_close(y, x @ w + bias)


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.fixture
def packed_8x4(rng):
    return pack(sparse_weight(rng, 8, 4, 0.5), "csr")


def test_wrong_input_width_at_run_time(library, packed_8x4):
    model = sparse_gemm_model([None, None], packed_8x4, 8, 4, "csr")
    message = run_error(model, library, {"X": np.zeros((2, 7), np.float32)})
    assert "SparseGemm" in message and "last dimension is 7" in message and "K is 8" in message


def test_rank_one_input_at_run_time(library, packed_8x4):
    model = sparse_gemm_model([None], packed_8x4, 8, 4, "csr")
    message = run_error(model, library, {"X": np.zeros(8, np.float32)})
    assert "SparseGemm" in message and "rank >= 2" in message


def test_residual_shape_mismatch_at_run_time(library, packed_8x4):
    model = sparse_gemm_model([2, 8], packed_8x4, 8, 4, "csr", residual_shape=[None, None])
    feeds = {"X": np.zeros((2, 8), np.float32), "residual": np.zeros((2, 5), np.float32)}
    message = run_error(model, library, feeds)
    assert "residual has shape [2, 5]" in message and "Y has shape [2, 4]" in message


def test_bias_length_mismatch_at_run_time(library, packed_8x4):
    model = sparse_gemm_model([2, 8], packed_8x4, 8, 4, "csr", bias=np.zeros(4, np.float32), bias_as_input=True)
    message = run_error(model, library, {"X": np.zeros((2, 8), np.float32), "bias": np.zeros(3, np.float32)})
    assert "bias has shape [3]" in message


def test_non_constant_weights(library, packed_8x4):
    model = sparse_gemm_model([2, 8], packed_8x4, 8, 4, "csr", weights_as_inputs=True)
    assert "must be a constant initializer" in creation_error(model, library)


def corrupt(packed, **changes):
    return {**packed, **{key: np.asarray(value, dtype=packed[key].dtype) for key, value in changes.items()}}


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: corrupt(p, indices=np.minimum(p["indices"] + 1, 8)), "outside [0, K=8)"),
        (lambda p: corrupt(p, indices=-1 - p["indices"]), "outside [0, K=8)"),
        (lambda p: corrupt(p, offsets=[0, 3, 1, 4, len(p["indices"])]), "decreases at group 1"),
        (lambda p: corrupt(p, offsets=[0, 1000, 2, 3, len(p["indices"])]), "decreases at group 1"),
        (lambda p: corrupt(p, offsets=p["offsets"][:-1]), "weight_group_offsets has 4 entries, expected 5"),
        (lambda p: corrupt(p, offsets=np.append(p["offsets"][:-1], 0)), "must start at 0 and end at"),
        (lambda p: corrupt(p, values=p["values"][:-1]), "weight_values has"),
        (lambda p: corrupt(p, indices=p["indices"][::-1].copy()), "not strictly increasing"),
    ],
    ids=[
        "index-too-large",
        "index-negative",
        "offsets-decrease",
        "offset-past-end",
        "offsets-short",
        "offsets-end",
        "values-short",
        "unsorted",
    ],
)
def test_malformed_packed_weights(library, change, expected):
    # A fixed weight with 4 nonzeros per channel, so that every corruption above applies.
    w = np.zeros((8, 4), np.float32)
    for n in range(4):
        w[[0, 2 + n % 2, 5, 7], n] = n + 1.0
    model = sparse_gemm_model([2, 8], change(pack(w, "csr")), 8, 4, "csr")
    message = creation_error(model, library)
    assert "SparseGemm node 'sg'" in message and expected in message


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"format": "coo"}, "format must be 'csr' or 'block4'"),
        ({"activation": "tanh"}, "unknown activation 'tanh'"),
        ({"K": None}, "K and N are required"),
        ({"residual_before_activation": 2}, "must be 0 or 1"),
        ({"single_thread": 2}, "single_thread must be 0 or 1, got 2"),
    ],
)
def test_bad_attributes(library, packed_8x4, attributes, expected):
    model = sparse_gemm_model([2, 8], packed_8x4, 8, 4, "csr", attributes=attributes)
    assert expected in creation_error(model, library)


def test_wrong_constant_bias_length(library, packed_8x4):
    model = sparse_gemm_model([2, 8], packed_8x4, 8, 4, "csr", bias=np.zeros(5, np.float32))
    assert "bias has shape [5], expected [4]" in creation_error(model, library)


def test_block4_group_count(library, rng):
    packed = pack(sparse_weight(rng, 8, 6, 0.5), "block4")  # 2 groups for N = 6
    model = sparse_gemm_model([2, 8], packed, 8, 9, "block4")  # N = 9 needs 3
    assert "weight_group_offsets has 3 entries, expected 4" in creation_error(model, library)


def test_unknown_isa_override(library, packed_8x4, monkeypatch):
    monkeypatch.setenv("ORTSPARSE_ISA", "sse9")
    model = sparse_gemm_model([2, 8], packed_8x4, 8, 4, "csr")
    assert "ORTSPARSE_ISA='sse9'" in creation_error(model, library)
