import numpy as np
import pytest
from onnx import helper

from ortsparse.rewriter import rewrite_model
from tests.rewriter_testing import (
    CONV_HW,
    CONV_N,
    assert_same_outputs,
    conv_then,
    op_types,
    rewrite,
)

RNG = np.random.default_rng(13)
OUT = 4


def batch_norm_constants(prefix, channels):
    return {
        f"{prefix}_scale": RNG.uniform(0.5, 2, channels).astype(np.float32),
        f"{prefix}_shift": RNG.standard_normal(channels).astype(np.float32),
        f"{prefix}_mean": RNG.standard_normal(channels).astype(np.float32),
        f"{prefix}_var": RNG.uniform(0.5, 2, channels).astype(np.float32),
    }


def batch_norm(x, y, prefix="bn"):
    inputs = [x, *(f"{prefix}_{name}" for name in ("scale", "shift", "mean", "var"))]
    return helper.make_node("BatchNormalization", inputs, [y], epsilon=1e-3)


def upsampling_head(bias_shape=(1, OUT, 1, 1), group=1, with_bias_input=False):
    """conv_then(Relu(BatchNormalization(ConvTranspose(x, 2x2, stride 2) + bias))), as PP-OCR's
    detector head writes it."""
    constants = {
        "Wt": RNG.standard_normal((CONV_N, OUT // group, 2, 2)).astype(np.float32),
        "bias": RNG.standard_normal(bias_shape).astype(np.float32),
        **batch_norm_constants("bn", OUT),
    }
    inputs = ["x", "Wt"]
    if with_bias_input:
        constants["Bt"] = RNG.standard_normal(OUT).astype(np.float32)
        inputs.append("Bt")
    nodes = [
        helper.make_node("ConvTranspose", inputs, ["t"], strides=[2, 2], group=group),
        helper.make_node("Add", ["t", "bias"], ["biased"]),
        batch_norm("biased", "normalized"),
        helper.make_node("Relu", ["normalized"], ["Y"]),
    ]
    return conv_then(nodes, constants=constants, outputs={"Y": ["b", OUT, 12, 12]})


@pytest.mark.parametrize("with_bias_input", [False, True])
def test_a_conv_transposes_bias_add_and_batch_norm_fold_into_it(with_bias_input):
    model = upsampling_head(with_bias_input=with_bias_input)
    rewritten = rewrite(model)
    assert op_types(rewritten) == ["SparseConv", "ConvTranspose", "Relu"]
    assert_same_outputs(model, rewritten)


@pytest.mark.parametrize(
    "options", [{"bias_shape": (1, 1, 12, 12)}, {"group": 2}], ids=["bias-per-pixel", "grouped"]
)
def test_what_does_not_run_along_the_output_channels_stays(options):
    model = upsampling_head(**options)
    rewritten = rewrite(model)
    assert "ConvTranspose" in op_types(rewritten) and "BatchNormalization" in op_types(rewritten)
    assert_same_outputs(model, rewritten)


def test_a_conv_the_rewrite_leaves_to_ort_takes_its_batch_norm():
    constants = {
        "W2": RNG.standard_normal((OUT, CONV_N, 3, 3)).astype(np.float32),  # dense: kept
        **batch_norm_constants("bn", OUT),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W2"], ["c"], name="dense", pads=[1, 1, 1, 1]),
        batch_norm("c", "Y"),
    ]
    model = conv_then(nodes, constants=constants, outputs={"Y": ["b", OUT, CONV_HW, CONV_HW]})
    rewritten = rewrite_model(model, min_sparsity=0.5).model
    assert op_types(rewritten) == ["SparseConv", "Conv"]
    assert_same_outputs(model, rewritten)


def test_nothing_changes_where_nothing_is_rewritten():
    model = upsampling_head()
    result = rewrite_model(model, min_sparsity=1.0)
    assert result.model.SerializeToString() == model.SerializeToString()
