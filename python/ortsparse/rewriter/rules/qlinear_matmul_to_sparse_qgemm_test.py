# Outputs must be identical to the exact reference's (tests/int8_reference.py), and to ORT's
# where ORT is exact on this CPU: SparseQGemm reproduces QLinearMatMul's requantization
# (quantized_testing.py).
import numpy as np
import pytest

from ortsparse.rewriter.quad_packing import PackedQuads, unpack_quads
from tests.quantized_testing import (
    assert_identical_outputs,
    qlinear_matmul_model,
    sparse_int8_weight,
)
from tests.rewriter_testing import attributes, op_types, rewrite

K, N = 70, 40  # K not a multiple of 4: the last quad is padded


def initializer(model, name):
    from onnx import numpy_helper

    return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


@pytest.mark.parametrize("activation", ["u8", "s8"])
@pytest.mark.parametrize("a_shape", [["m", K], [2, "m", K]], ids=["2d", "3d"])
def test_qlinear_matmul_becomes_sparse_qgemm_with_identical_outputs(activation, a_shape):
    weight = sparse_int8_weight(K, N)
    model = qlinear_matmul_model(weight, a_shape, activation)
    rewritten = rewrite(model)

    assert op_types(rewritten) == ["SparseQGemm"]
    (node,) = rewritten.graph.node
    attrs = attributes(node)
    assert (attrs["K"], attrs["N"], attrs["format"]) == (K, N, "quad4")
    assert attrs["x_zero_point"] == 3
    packed = PackedQuads(
        K,
        N,
        initializer(rewritten, node.input[1]),
        initializer(rewritten, node.input[2]),
        initializer(rewritten, node.input[3]),
    )
    np.testing.assert_array_equal(unpack_quads(packed), weight)
    for m in (1, 17, 130):  # partial vectors, several tiles
        assert_identical_outputs(model, rewritten, {"m": m})


def test_per_column_weight_scales_give_identical_outputs():
    weight = sparse_int8_weight(K, N, seed=3)
    scales = np.linspace(0.005, 0.05, N).astype(np.float32)
    model = qlinear_matmul_model(weight, ["m", K], "u8", w_scale=scales)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseQGemm"]
    assert_identical_outputs(model, rewritten, {"m": 33})


def test_nonzero_weight_zero_point_is_kept_with_a_reason():
    model = qlinear_matmul_model(sparse_int8_weight(K, N), ["m", K])
    zero_point = next(t for t in model.graph.initializer if t.name == "w_z")
    zero_point.raw_data = np.int8(2).tobytes()
    from ortsparse.rewriter import rewrite_model

    result = rewrite_model(model, min_sparsity=0.5)
    assert op_types(result.model) == ["QLinearMatMul"]
    (decision,) = result.decisions
    assert not decision.rewritten and "zero point is not 0" in decision.reason


def test_dense_weight_is_kept_by_the_policy():
    from ortsparse.rewriter import rewrite_model

    model = qlinear_matmul_model(sparse_int8_weight(K, N, sparsity=0.2), ["m", K])
    (decision,) = rewrite_model(model).decisions
    assert not decision.rewritten and "quads hold a weight" in decision.reason
