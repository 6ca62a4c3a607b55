"""One-shot sparsification of a whole ONNX model.

Each prunable layer (layers.py) is pruned to the target sparsity in the chosen pattern, by
magnitude or by layer-wise reconstruction (reconstruction.py), whose Hessian H = X^T X comes from
the layer's inputs on the calibration samples. Those inputs are the dense model's: every layer is
reconstructed against what its input is before any pruning (not sequentially, layer after pruned
layer), which keeps the calibration to one pass of ONNX Runtime per group of layers.

Hessians take K x K float64 each (170 MB for a 3x3 convolution on 512 channels); layers are
taken in groups whose Hessians fit HESSIAN_BUDGET_BYTES, one calibration pass per group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
from ortsparse.sparsify.patterns import Pattern, magnitude_prune
from ortsparse.sparsify.reconstruction import output_error, reconstruct

HESSIAN_BUDGET_BYTES = 1 << 30
METHODS = ("obs", "magnitude")

Progress = Callable[[str], None]


class SparsifyError(ValueError):
    """A request sparsify cannot carry out, with what to change."""


@dataclass(frozen=True)
class LayerResult:
    name: str
    op_type: str
    shape: tuple[int, ...]
    sparsity: float  # zeros of the pruned weight
    #: The layer's output error on the calibration inputs, as a fraction of what zeroing the
    #: whole weight would cause; None without calibration inputs.
    relative_error: float | None


@dataclass(frozen=True)
class SparsifyResult:
    model: onnx.ModelProto
    layers: list[LayerResult]
    left_dense: list[str]  # a line per MatMul/Gemm/Conv left as it is, and why


def sparsify_model(
    model: onnx.ModelProto,
    model_path: str,
    *,
    sparsity: float,
    pattern: Pattern,
    method: str = "obs",
    calibration: CalibrationInputs | None = None,
    dense: Sequence[str] = (),
    prune_ends: bool = False,
    min_weights: int = DEFAULT_MIN_WEIGHTS,
    progress: Progress | None = None,
) -> SparsifyResult:
    """Prunes `model` (loaded from `model_path`, which ONNX Runtime runs for calibration) in
    place and returns it with what was done. `dense`: regular expressions; a layer whose node or
    weight name one of them matches (re.search) stays dense. Unless `prune_ends`, the first and
    the last layer stay dense too (a stem conv, a classifier head). Raises SparsifyError."""
    say = progress or (lambda message: None)
    if method not in METHODS:
        raise SparsifyError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if pattern.fixed_sparsity is None and not 0.0 < sparsity < 1.0:
        raise SparsifyError(f"sparsity must be in (0, 1), got {sparsity}")
    if method == "obs" and calibration is None:
        raise SparsifyError(
            "reconstruction (--method obs) needs calibration inputs (--calibration): an .npz of "
            "arrays keyed by input name, or a folder of images; --method magnitude needs none"
        )
    try:
        patterns = [re.compile(expression) for expression in dense]
    except re.error as error:
        raise SparsifyError(f"--dense: {error}") from None
    layers, left_dense = find_layers(model, min_weights)
    ends = set() if prune_ends else end_nodes(model)
    chosen: list[Layer] = []
    for layer in layers:
        if layer.node_name in ends:
            left_dense.append(f"{layer.node_name}: the model's first or last layer")
        elif any(p.search(layer.node_name) or p.search(layer.weight_name) for p in patterns):
            left_dense.append(f"{layer.node_name}: matches --dense")
        else:
            chosen.append(layer)
    if not chosen:
        raise SparsifyError(
            "no layer to prune: "
            + ("; ".join(left_dense) or "no MatMul, Gemm or Conv with a constant weight")
        )
    hessians = (
        collect_hessians(model_path, chosen, calibration, say) if calibration is not None else {}
    )
    results = []
    for number, layer in enumerate(chosen, 1):
        matrix = layer.matrix()
        hessian = hessians.get(layer.node_name)
        if method == "obs":
            pruned = reconstruct(matrix, hessian, sparsity, pattern)
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
                float(np.count_nonzero(pruned == 0)) / pruned.size,
                relative,
            )
        )
        say(f"pruned {number}/{len(chosen)}: {layer.node_name} ({results[-1].sparsity:.1%} zeros)")
    return SparsifyResult(model, results, left_dense)


def collect_hessians(
    model_path: str, layers: list[Layer], calibration: CalibrationInputs, say: Progress
) -> dict[str, np.ndarray]:
    """H = X^T X of every layer's input rows over the calibration samples, float64."""
    hessians: dict[str, np.ndarray] = {}
    for group in _groups_within_budget(layers):
        session, outputs = _capturing_session(model_path, [layer.activation for layer in group])
        sums = {layer.node_name: None for layer in group}
        for number, feed in enumerate(calibration, 1):
            values = dict(zip(outputs, session.run(outputs, feed))) if outputs else {}
            values.update(feed)
            for layer in group:
                activation = np.asarray(values[layer.activation], dtype=np.float64)
                for rows in input_rows(layer, activation):
                    product = rows.T @ rows
                    current = sums[layer.node_name]
                    sums[layer.node_name] = product if current is None else current + product
            if number == len(calibration) or number % max(1, len(calibration) // 10) == 0:
                say(
                    f"calibration: inputs of layers {group[0].node_name} .. "
                    f"{group[-1].node_name}, batch {number}/{len(calibration)}"
                )
        hessians.update(sums)
    return hessians


def _groups_within_budget(layers: list[Layer]) -> list[list[Layer]]:
    groups: list[list[Layer]] = [[]]
    used = 0
    for layer in layers:
        k = layer.matrix().shape[1]
        size = k * k * 8
        if groups[-1] and used + size > HESSIAN_BUDGET_BYTES:
            groups.append([])
            used = 0
        groups[-1].append(layer)
        used += size
    return groups


def _capturing_session(
    model_path: str, tensors: list[str]
) -> tuple[ort.InferenceSession, list[str]]:
    """A session of the original model with `tensors` among its outputs (graph inputs, which
    come from the feed, aside)."""
    model = onnx.load(model_path)
    inputs = {value.name for value in model.graph.input}
    present = {value.name for value in model.graph.output}
    wanted = [name for name in dict.fromkeys(tensors) if name not in inputs]
    for name in wanted:
        if name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session, wanted
