import numpy as np
import pytest
from onnx import helper, numpy_helper

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.packing import PackedWeight, unpack
from tests.rewriter_testing import (
    assert_same_outputs,
    attributes,
    make_model,
    op_types,
    rewrite,
    sparse_gemms,
    sparse_weight,
)

K, N = 32, 12


def matmul_model(a_shape, weight=None):
    weight = sparse_weight(K, N) if weight is None else weight
    return make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"], name="proj/MatMul")],
        {"A": a_shape},
        {"Y": [*a_shape[:-1], weight.shape[1]]},
        {"W": weight},
    )


def initializer(model, name):
    return next(
        numpy_helper.to_array(tensor) for tensor in model.graph.initializer if tensor.name == name
    )


@pytest.mark.parametrize(
    "a_shape", [["m", K], ["batch", 5, K], [2, 3, 4, K]], ids=["2d", "3d", "4d"]
)
def test_matmul_becomes_sparse_gemm_with_the_weight_packed(a_shape):
    weight = sparse_weight(K, N)
    model = matmul_model(a_shape, weight)
    rewritten = rewrite(model)

    (gemm,) = sparse_gemms(rewritten)
    assert op_types(rewritten) == ["SparseGemm"]
    assert gemm.input[0] == "A" and list(gemm.output) == ["Y"]
    assert gemm.name.startswith("proj/MatMul")
    attrs = attributes(gemm)
    assert (attrs["K"], attrs["N"], attrs["activation"]) == (K, N, "none")
    packed = PackedWeight(
        attrs["format"], K, N, *(initializer(rewritten, name) for name in gemm.input[1:4])
    )
    np.testing.assert_array_equal(unpack(packed), weight)
    assert "W" not in {tensor.name for tensor in rewritten.graph.initializer}
    assert ("ortsparse", 1) in {(opset.domain, opset.version) for opset in rewritten.opset_import}
    assert (
        rewritten.graph.input == model.graph.input and rewritten.graph.output == model.graph.output
    )
    assert_same_outputs(model, rewritten)


def test_weight_from_a_constant_node():
    weight = sparse_weight(K, N)
    model = make_model(
        [
            helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(weight)),
            helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm"),
        ],
        {"A": ["m", K]},
        {"Y": ["m", N]},
    )
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseGemm"]  # the Constant node it no longer needs is gone
    assert_same_outputs(model, rewritten)


def test_weight_that_is_a_graph_input_is_left_alone():
    model = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm")],
        {"A": ["m", K], "W": [K, N]},
        {"Y": ["m", N]},
    )
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["MatMul"]
    (decision,) = result.decisions
    assert not decision.rewritten and "not a constant" in decision.reason
    assert decision.weight_shape == (K, N) and decision.format == "-"


def test_initializer_also_listed_as_graph_input_is_not_a_constant():
    model = matmul_model(["m", K])
    model.graph.input.append(helper.make_tensor_value_info("W", 1, [K, N]))
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["MatMul"]
    assert "not a constant" in result.decisions[0].reason


def test_rank_1_a_is_left_alone_and_reported():
    model = make_model(
        [helper.make_node("MatMul", ["A", "W"], ["Y"], name="mm")],
        {"A": [K]},
        {"Y": [N]},
        {"W": sparse_weight(K, N)},
    )
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["MatMul"]
    (decision,) = result.decisions
    assert not decision.rewritten and "1-D" in decision.reason


def test_weight_below_min_sparsity_is_left_alone():
    model = matmul_model(["m", K], sparse_weight(K, N, sparsity=0.5))
    result = rewrite_model(model, min_sparsity=0.9)
    assert op_types(result.model) == ["MatMul"]
    (decision,) = result.decisions
    assert not decision.rewritten and "< min-sparsity 90.0%" in decision.reason
    assert 0.3 < decision.sparsity < 0.7


def test_min_sparsity_overrides_the_cost_model():
    half_sparse = sparse_weight(K, N, sparsity=0.5)
    assert not rewrite_model(matmul_model(["m", K], half_sparse)).decisions[0].rewritten
    model = matmul_model(["m", K], half_sparse)
    rewritten = rewrite(model, min_sparsity=0.3)
    assert op_types(rewritten) == ["SparseGemm"]
    assert_same_outputs(model, rewritten)


def test_cost_model_keeps_a_dense_weight_and_takes_a_very_sparse_large_one():
    dense = rewrite_model(matmul_model(["m", K], sparse_weight(K, N, sparsity=0.0)))
    assert not dense.decisions[0].rewritten and "slower than dense" in dense.decisions[0].reason
    sparse = rewrite_model(matmul_model(["m", 512], sparse_weight(512, 512, sparsity=0.98)))
    assert sparse.decisions[0].rewritten and "faster than dense" in sparse.decisions[0].reason


@pytest.mark.parametrize("block,format", [(1, "csr"), (4, "block4")])
def test_format_follows_the_weights_structure(block, format):
    model = matmul_model(["m", 256], sparse_weight(256, 256, sparsity=0.9, block=block))
    result = rewrite_model(model)  # the measured cost model decides
    (decision,) = result.decisions
    assert decision.rewritten and decision.format == format
    (gemm,) = sparse_gemms(result.model)
    assert attributes(gemm)["format"] == format
    assert_same_outputs(model, result.model)


def test_non_float_weight_is_left_alone():
    model = matmul_model(["m", K])
    model.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(sparse_weight(K, N).astype(np.float16), "W")
    )
    model.graph.input[0].type.tensor_type.elem_type = 10
    model.graph.output[0].type.tensor_type.elem_type = 10
    result = rewrite_model(model, min_sparsity=0.0)
    assert op_types(result.model) == ["MatMul"] and "float16" in result.decisions[0].reason
