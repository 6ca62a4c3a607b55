"""ortsparse.model_versions: the IR version and opset of models made from nothing."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from ortsparse.model_versions import (
    _OPEN_ENDED,
    ModelVersions,
    _loads,
    _runs_every_operator_at,
    newest_model_versions,
)


def quantized_conv_graph() -> onnx.GraphProto:
    """X -> QuantizeLinear -> DequantizeLinear -> Conv -> Y: operators whose newest opsets some
    onnxruntime releases load but have no kernel for."""
    nodes = [
        helper.make_node("QuantizeLinear", ["X", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["x"]),
        helper.make_node("Conv", ["x", "W"], ["Y"]),
    ]
    initializers = [
        numpy_helper.from_array(np.float32(0.1), "scale"),
        numpy_helper.from_array(np.uint8(128), "zero"),
        numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "W"),
    ]
    return helper.make_graph(
        nodes,
        "quantized_conv",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2, 4, 4])],
        initializers,
    )


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_newest_versions_make_models_onnxruntime_runs_and_onnx_checks():
    model = newest_model_versions().make_model(quantized_conv_graph(), [("com.microsoft", 1)])
    onnx.checker.check_model(model, full_check=True)
    x = np.full((1, 3, 4, 4), 1.0, np.float32)
    (y,) = session(model).run(None, {"X": x})
    np.testing.assert_allclose(y, np.full((1, 2, 4, 4), 3.0, np.float32), rtol=1e-6)


def test_the_ir_version_probe_tells_what_onnxruntime_loads():
    assert _loads(8)
    assert _loads(newest_model_versions().ir_version)
    assert not _loads(1000)


def test_the_versions_are_found_once_and_fit_every_supported_onnxruntime():
    newest = newest_model_versions()
    assert newest_model_versions() is newest
    assert newest.opset >= 17 and newest.ir_version >= 8
    assert newest.opset <= onnx.defs.onnx_opset_version() and newest.ir_version <= onnx.IR_VERSION
    assert helper.find_min_ir_version_for([helper.make_opsetid("", newest.opset)]) <= (
        newest.ir_version
    )


SCHEMAS = {"Conv": [1, 11, 22], "Relu": [6, 13, 14]}


@pytest.mark.parametrize(
    "conv_kernels, opset, runs",
    [
        # A kernel with no upper version matches its own schema version only.
        ([(1, 10), (11, _OPEN_ENDED)], 21, True),
        ([(1, 10), (11, _OPEN_ENDED)], 22, False),
        ([(1, 10), (11, 21), (22, _OPEN_ENDED)], 23, True),
        # A closed range covers every schema version inside it.
        ([(1, 10), (11, 30)], 22, True),
        ([(1, 10)], 11, False),
    ],
)
def test_an_opset_runs_where_every_operator_keeps_a_kernel(conv_kernels, opset, runs):
    kernels = {"Conv": conv_kernels, "Relu": [(6, 12), (13, 13), (14, _OPEN_ENDED)]}
    assert _runs_every_operator_at(opset, SCHEMAS, kernels) is runs


def test_an_operator_newer_than_the_opset_does_not_count():
    kernels = {"Relu": [(14, _OPEN_ENDED)]}
    assert _runs_every_operator_at(13, {"Relu": [14]}, kernels)


def test_make_model_imports_the_extra_domains_at_their_versions():
    model = ModelVersions(8, 17).make_model(quantized_conv_graph(), [("ortsparse", 1)])
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17), ("ortsparse", 1)]
