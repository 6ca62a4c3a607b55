import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.packing import PackedWeight, unpack
from tests.rewriter_testing import (
    CONV_C,
    CONV_N,
    FORCE_REWRITE,
    assert_same_outputs,
    conv_then,
    conv_weight,
    fused_conv,
    make_model,
    matmul_then,
    op_types,
    rewrite,
)

RNG = np.random.default_rng(7)


def batch_norm_parameters(n=CONV_N):
    return {
        "scale": RNG.uniform(0.5, 2.0, n).astype(np.float32),
        "shift": RNG.standard_normal(n).astype(np.float32),
        "mean": RNG.standard_normal(n).astype(np.float32),
        "var": RNG.uniform(0.1, 3.0, n).astype(np.float32),
    }


def batch_norm(x="x", y="Y", **attributes):
    return helper.make_node(
        "BatchNormalization", [x, "scale", "shift", "mean", "var"], [y], **attributes
    )


def initializer(model, name):
    return next(
        numpy_helper.to_array(tensor) for tensor in model.graph.initializer if tensor.name == name
    )


def test_batch_norm_is_folded_into_the_packed_weight_and_the_bias():
    parameters = batch_norm_parameters()
    model = conv_then([batch_norm(epsilon=1e-3)], constants=parameters)
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert result.decisions[0].fused == ["BatchNormalization"]
    conv, attrs = fused_conv(result.model)
    assert list(conv.output) == ["Y"] and len(conv.input) == 5

    factors = parameters["scale"] / np.sqrt(parameters["var"].astype(np.float64) + 1e-3)
    k = CONV_C * 9
    packed = PackedWeight(
        attrs["format"], k, CONV_N, *(initializer(result.model, name) for name in conv.input[1:4])
    )
    original = initializer(model, "W").reshape(CONV_N, k).T
    np.testing.assert_allclose(unpack(packed), original * factors, rtol=1e-6)
    assert np.count_nonzero(unpack(packed)) == np.count_nonzero(original)  # zeros stay zeros
    expected_bias = parameters["shift"] - parameters["mean"] * factors
    np.testing.assert_allclose(initializer(result.model, conv.input[4]), expected_bias, rtol=1e-6)
    assert_same_outputs(model, result.model)


@pytest.mark.parametrize("block", [1, 4], ids=["csr-like", "block4-like"])
def test_batch_norm_after_a_conv_with_a_bias(block):
    parameters = batch_norm_parameters()
    conv = helper.make_node("Conv", ["X", "W", "B"], ["x"], name="conv", pads=[1, 1, 1, 1])
    constants = {
        "W": conv_weight(CONV_N, CONV_C, (3, 3), block=block),
        "B": RNG.standard_normal(CONV_N).astype(np.float32),
        **parameters,
    }
    model = make_model(
        [conv, batch_norm(), helper.make_node("Relu", ["Y"], ["Z"])],
        {"X": [2, CONV_C, 5, 5]},
        {"Z": [2, CONV_N, 5, 5]},
        constants,
    )
    result = rewrite_model(model, min_sparsity=FORCE_REWRITE)
    assert result.decisions[0].fused == ["BatchNormalization", "Relu"]
    fused_conv(result.model)
    assert_same_outputs(model, result.model)


def test_batch_norm_with_a_parameter_that_is_a_graph_input_is_not_folded():
    parameters = batch_norm_parameters()
    del parameters["mean"]
    model = conv_then([batch_norm()], extra_inputs={"mean": [CONV_N]}, constants=parameters)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "BatchNormalization"]
    assert_same_outputs(model, rewritten)


def test_batch_norm_after_the_activation_is_not_folded():
    model = conv_then(
        [helper.make_node("Relu", ["x"], ["r"]), batch_norm("r")],
        constants=batch_norm_parameters(),
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "BatchNormalization"]
    assert_same_outputs(model, rewritten)


def test_batch_norm_in_training_mode_is_not_folded():
    node = batch_norm(training_mode=1)
    node.output.extend(["running_mean", "running_var"])
    statistics = {"running_mean": [CONV_N], "running_var": [CONV_N]}
    model = conv_then(
        [node],
        constants=batch_norm_parameters(),
        outputs={"Y": ["b", CONV_N, 6, 6], **statistics},
    )
    assert op_types(rewrite(model)) == ["SparseConv", "BatchNormalization"]


def test_batch_norm_whose_input_is_also_read_elsewhere_is_not_folded():
    model = conv_then(
        [batch_norm(), helper.make_node("Neg", ["x"], ["Z"])],
        constants=batch_norm_parameters(),
        outputs={"Y": ["b", CONV_N, 6, 6], "Z": ["b", CONV_N, 6, 6]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "BatchNormalization", "Neg"]
    assert_same_outputs(model, rewritten)


def test_batch_norm_after_a_sparse_gemm_is_not_folded():
    # BatchNormalization normalizes axis 1, not SparseGemm's channel axis in general.
    model = matmul_then([batch_norm()], constants=batch_norm_parameters(n=8))
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm", "BatchNormalization"]
    assert_same_outputs(model, rewritten)
