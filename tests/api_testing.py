"""What the tests of the benchmark command, ortsparse.InferenceSession and compile_model share: a
tiny sparse MLP, and stock ONNX Runtime's outputs on it to compare against.

FP32 agreement: max |Y - Y_ort| <= 1e-4 * max |Y_ort| (as tests/test_end_to_end.py).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

# FORCE_REWRITE (min_sparsity) rewrites every MatMul of the MLP, whatever the measured cost model
# says of layers this small.
from tests.rewriter_testing import FORCE_REWRITE, make_model, sparse_weight

__all__ = ["FORCE_REWRITE", "assert_close", "mlp_input", "ort_outputs", "save", "sparse_mlp"]

HIDDEN, OUTPUTS = 16, 8
RTOL_OF_MAX = 1e-4


def sparse_mlp(seed: int = 0, batch: int | str = "batch") -> onnx.ModelProto:
    """Y = MatMul(Relu(MatMul(A [batch, HIDDEN], W0)), W1) [batch, OUTPUTS], weights 90% zero."""
    nodes = [
        helper.make_node("MatMul", ["A", "W0"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "W1"], ["Y"], name="second"),
    ]
    weights = {
        "W0": sparse_weight(HIDDEN, HIDDEN, seed=seed),
        "W1": sparse_weight(HIDDEN, OUTPUTS, seed=seed + 1),
    }
    return make_model(nodes, {"A": [batch, HIDDEN]}, {"Y": [batch, OUTPUTS]}, weights)


def save(model: onnx.ModelProto, path) -> str:
    onnx.save_model(model, path)
    return str(path)


def mlp_input(batch: int = 3) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((batch, HIDDEN), dtype=np.float32)


def ort_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_close(actual: list[np.ndarray], expected: list[np.ndarray]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) <= RTOL_OF_MAX * np.max(np.abs(want))
