# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU. MatMulInteger and SparseMatMulInteger both compute the exact
# int32 product.
import numpy as np
import pytest
from onnx import TensorProto

from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.quad_packing import PackedQuads, unpack_quads
from tests.quantized_testing import (
    assert_identical_outputs,
    matmul_integer_model,
    sparse_int8_weight,
)
from tests.rewriter_testing import attributes, op_types, rewrite

K, N = 70, 40  # K not a multiple of 4: the last quad is padded


def initializer(model, name):
    from onnx import numpy_helper

    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("a_zero_point", ["constant", "input", "none"])
@pytest.mark.parametrize("a_shape", [["m", K], [2, "m", K]], ids=["2d", "3d"])
def test_matmul_integer_becomes_sparse_matmul_integer_with_identical_outputs(
    activation, a_zero_point, a_shape
):
    weight = sparse_int8_weight(K, N)
    model = matmul_integer_model(weight, a_shape, activation, a_zero_point)
    rewritten = rewrite(model)

    assert op_types(rewritten) == ["SparseMatMulInteger"]
    (node,) = rewritten.graph.node
    attrs = attributes(node)
    assert (attrs["K"], attrs["N"], attrs["format"]) == (K, N, "quad4")
    assert len(node.input) == (4 if a_zero_point == "none" else 5)
    packed = PackedQuads(K, N, *(initializer(rewritten, name) for name in node.input[1:4]))
    np.testing.assert_array_equal(unpack_quads(packed), weight)
    for m in (1, 17, 130):  # partial vectors, several tiles
        assert_identical_outputs(model, rewritten, {"m": m})


def kept_reason(model):
    result = rewrite_model(model, min_sparsity=0.5)
    assert op_types(result.model) == ["MatMulInteger"]
    (decision,) = result.decisions
    assert not decision.rewritten
    return decision.reason


def test_nonzero_weight_zero_point_is_kept_with_a_reason():
    model = matmul_integer_model(sparse_int8_weight(K, N), ["m", K])
    zero_point = next(t for t in model.graph.initializer if t.name == "w_z")
    zero_point.raw_data = np.int8(2).tobytes()
    assert "weight zero point is not 0" in kept_reason(model)


def test_per_row_activation_zero_point_is_kept_with_a_reason():
    model = matmul_integer_model(sparse_int8_weight(K, N), [5, K], a_zero_point="input")
    model.graph.input[1].type.tensor_type.shape.dim.add().dim_value = 5
    assert "per row" in kept_reason(model)


def test_uint8_weight_is_kept_with_a_reason():
    model = matmul_integer_model(sparse_int8_weight(K, N), ["m", K])
    weight = next(t for t in model.graph.initializer if t.name == "W")
    weight.data_type = TensorProto.UINT8
    zero_point = next(t for t in model.graph.initializer if t.name == "w_z")
    zero_point.data_type = TensorProto.UINT8
    assert "SparseMatMulInteger takes int8" in kept_reason(model)


def test_dense_weight_is_kept_by_the_policy():
    model = matmul_integer_model(sparse_int8_weight(K, N, sparsity=0.2), ["m", K])
    (decision,) = rewrite_model(model).decisions
    assert not decision.rewritten and "quads hold a weight" in decision.reason
