"""One-shot sparsification of a whole ONNX model.

Each prunable layer (layers.py) is pruned to the target sparsity in the chosen pattern, by magnitude
or by layer-wise reconstruction (reconstruction.py), whose Hessian H = X^T X comes from the layer's
inputs on the calibration samples. Layers are taken in graph order, and each one's inputs come from
the model as pruned so far: a layer is reconstructed against what it will really be fed, so that the
errors of the layers before it are corrected rather than compounded (on the digits MLP of
tools/sparsify_accuracy.py, 1x4 at 90%: 20% accuracy reconstructing each layer against the dense
model's inputs, 57.5% sequentially; unstructured 90%: 94.4% and 96.1%). That is one pass of ONNX
Runtime over the calibration samples per layer, holding one K x K float64 Hessian at a time (170 MB
for a 3x3 convolution on 512 channels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import onnx
import onnxruntime as ort

from ortsparse.sparsify.calibration_inputs import CalibrationInputs
from ortsparse.sparsify.layers import (
    DEFAULT_MIN_WEIGHTS,
    Layer,
    end_nodes,
    find_layers,
    input_rows,
)
from ortsparse.sparsify.patterns import magnitude_prune
from ortsparse.sparsify.quantization import quantize
from ortsparse.sparsify.recipe import LayerPlan, Recipe
from ortsparse.sparsify.reconstruction import (
    DAMPING,
    choose_damping,
    output_error,
    reconstruct,
)
from ortsparse.sparsify.sensitivity import SensitivityCurve, distribute, sensitivity_curve

Progress = Callable[[str], None]


class SparsifyError(ValueError):
    """A request sparsify cannot carry out, with what to change."""


@dataclass(frozen=True)
class LayerResult:
    name: str
    op_type: str
    shape: tuple[int, ...]
    pattern: str
    sparsity: float  # zeros of the pruned weight
    #: The layer's output error on the calibration inputs, as a fraction of what zeroing the
    #: whole weight would cause; None without calibration inputs.
    relative_error: float | None


@dataclass(frozen=True)
class SparsifyResult:
    model: onnx.ModelProto  # quantized where the recipe says so
    layers: list[LayerResult]
    left_dense: list[str]  # a line per MatMul/Gemm/Conv left as it is, and why


def sparsify_model(
    model: onnx.ModelProto,
    recipe: Recipe,
    *,
    calibration: CalibrationInputs | None = None,
    min_weights: int = DEFAULT_MIN_WEIGHTS,
    progress: Progress | None = None,
) -> SparsifyResult:
    """Prunes `model` in place as `recipe` says (ONNX Runtime runs it on the calibration inputs
    as it goes) and returns it with what was done. Raises SparsifyError."""
    say = progress or (lambda message: None)
    if recipe.method == "obs" and calibration is None:
        raise SparsifyError(
            "reconstruction (method obs) needs calibration inputs (--calibration): an .npz of "
            "arrays keyed by input name, or a folder of images; method magnitude needs none"
        )
    if recipe.quantization is not None and calibration is None:
        raise SparsifyError(
            "quantization calibrates the activations' ranges: it needs calibration inputs "
            "(--calibration)"
        )
    if recipe.distribution == "sensitivity" and calibration is None:
        raise SparsifyError(
            "the sensitivity distribution measures each layer's error on calibration inputs: "
            "give --calibration"
        )
    chosen, left_dense = choose_layers(model, recipe, min_weights)
    if recipe.distribution == "sensitivity":
        curves = analyze(model, recipe, calibration, [layer for layer, _ in chosen], say)
        targets = distribute(curves, recipe.sparsity)
        chosen = [
            (layer, replace(plan, sparsity=targets[layer.node_name]) if plan.distributed else plan)
            for layer, plan in chosen
        ]
        for layer, plan in chosen:
            if plan.sparsity <= 0:
                left_dense.append(f"{layer.node_name}: too sensitive (sensitivity distribution)")
        chosen = [(layer, plan) for layer, plan in chosen if plan.sparsity > 0]
    results = []
    for number, (layer, plan) in enumerate(chosen, 1):
        sparsity, pattern = plan.sparsity, plan.pattern
        matrix = layer.matrix()
        hessian = held_out = None
        if calibration is not None:
            fit, held_out = layer_hessians(model, layer, calibration)
            hessian = fit if held_out is None else fit + held_out
            say(f"calibrated {number}/{len(chosen)}: {layer.node_name}")
        if recipe.method == "obs":
            damping = DAMPING
            if held_out is not None:
                damping = choose_damping(matrix, fit, held_out, sparsity, pattern)
                say(f"  damping {damping:g}: the least output error on held-out batches")
            pruned = reconstruct(matrix, hessian, sparsity, pattern, damping)
        else:
            pruned = magnitude_prune(matrix, sparsity, pattern)
        relative = None
        if hessian is not None:
            zeroed = output_error(matrix, np.zeros_like(matrix), hessian)
            relative = output_error(matrix, pruned, hessian) / zeroed if zeroed > 0 else 0.0
        layer.store(pruned)
        results.append(
            LayerResult(
                layer.node_name,
                layer.op_type,
                tuple(layer.tensor.dims),
                pattern.name,
                float(np.count_nonzero(pruned == 0)) / pruned.size,
                relative,
            )
        )
        say(f"pruned {number}/{len(chosen)}: {layer.node_name} ({results[-1].sparsity:.1%} zeros)")
    if recipe.quantization is not None:
        say(f"quantizing to INT8 ({recipe.quantization.format}) on the calibration inputs")
        model = quantize(model, calibration, recipe.quantization)
    return SparsifyResult(model, results, left_dense)


def choose_layers(
    model: onnx.ModelProto, recipe: Recipe, min_weights: int = DEFAULT_MIN_WEIGHTS
) -> tuple[list[tuple[Layer, LayerPlan]], list[str]]:
    """The layers the recipe prunes, each with its plan, and a line per layer left dense."""
    layers, left_dense = find_layers(model, min_weights)
    ends = set() if recipe.prune_ends else end_nodes(model)
    chosen = []
    for layer in layers:
        plan = recipe.plan(layer.node_name, layer.weight_name)
        if layer.node_name in ends:
            left_dense.append(f"{layer.node_name}: the model's first or last layer")
        elif plan is None:
            left_dense.append(f"{layer.node_name}: left dense by the recipe")
        else:
            chosen.append((layer, plan))
    if not chosen:
        raise SparsifyError(
            "no layer to prune: "
            + ("; ".join(left_dense) or "no MatMul, Gemm or Conv with a constant weight")
        )
    return chosen, left_dense


def analyze(
    model: onnx.ModelProto,
    recipe: Recipe,
    calibration: CalibrationInputs,
    layers: list[Layer],
    progress: Progress | None = None,
) -> list[SensitivityCurve]:
    """Each layer's sensitivity curve (sensitivity.py) in `model` as it is, by the recipe's
    method and each layer's pattern."""
    say = progress or (lambda message: None)
    curves = []
    for number, layer in enumerate(layers, 1):
        plan = recipe.plan(layer.node_name, layer.weight_name)
        pattern = plan.pattern if plan is not None else recipe.pattern
        hessian = layer_hessian(model, layer, calibration)
        accuracy = None
        if calibration.labels is not None:
            accuracy = lambda: top1_accuracy(model, calibration)  # noqa: E731
        curves.append(sensitivity_curve(layer, hessian, pattern, recipe.method, accuracy))
        say(f"sensitivity {number}/{len(layers)}: {layer.node_name}")
    return curves


def top1_accuracy(model: onnx.ModelProto, calibration: CalibrationInputs) -> float:
    """The share of labelled calibration samples whose first output's argmax is their label."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    correct = total = 0
    for feed, labels in zip(calibration, calibration.labels):
        scores = session.run(None, feed)[0].reshape(len(labels), -1)
        correct += int(np.count_nonzero(np.argmax(scores, axis=1) == labels))
        total += len(labels)
    return correct / total


def layer_hessian(
    model: onnx.ModelProto, layer: Layer, calibration: CalibrationInputs
) -> np.ndarray:
    """H = X^T X of the layer's input rows over the calibration samples, in `model` as it is
    now, float64."""
    fit, held_out = layer_hessians(model, layer, calibration)
    return fit if held_out is None else fit + held_out


def layer_hessians(
    model: onnx.ModelProto, layer: Layer, calibration: CalibrationInputs
) -> tuple[np.ndarray, np.ndarray | None]:
    """layer_hessian's H in two parts: over the even calibration batches and over the odd ones
    (None when there is only one batch), whose sum it is."""
    session, outputs = _capturing_session(model, layer.activation)
    parts: list[np.ndarray | None] = [None, None]
    for index, feed in enumerate(calibration):
        values = dict(zip(outputs, session.run(outputs, feed))) if outputs else {}
        values.update(feed)
        for rows in input_rows(layer, np.asarray(values[layer.activation], dtype=np.float64)):
            product = rows.T @ rows
            part = parts[index % 2]
            parts[index % 2] = product if part is None else part + product
    return parts[0], parts[1]


def _capturing_session(
    model: onnx.ModelProto, tensor: str
) -> tuple[ort.InferenceSession, list[str]]:
    """A session of `model` with `tensor` among its outputs (unless it is a graph input, which
    comes from the feed), and the outputs to ask it for."""
    capturing = onnx.ModelProto()
    capturing.CopyFrom(model)
    if tensor in {value.name for value in capturing.graph.input}:
        wanted = []
    else:
        wanted = [tensor]
        if tensor not in {value.name for value in capturing.graph.output}:
            capturing.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        capturing.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session, wanted
