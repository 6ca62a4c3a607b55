"""How sensitive each layer is to pruning, and a distribution of sparsity that follows it.

A layer's sensitivity curve is its output error on the calibration inputs (as a fraction of what
zeroing its weight would cause) when it alone is pruned to each of SPARSITIES, by the recipe's
method and pattern, against its input in the dense model; with labelled calibration inputs, also
the whole model's top-1 accuracy on them with that layer so pruned. From the curves, a target average
sparsity becomes per-layer targets: every layer is pruned as far as its curve stays under one
error threshold (interpolated between the measured points, at most the highest of them), the
threshold chosen by bisection so that the layers' weights reach the target on average. Layers
that lose little go further than the target, sensitive ones stay below it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ortsparse.sparsify.layers import Layer
from ortsparse.sparsify.patterns import Pattern, magnitude_prune
from ortsparse.sparsify.reconstruction import output_error, reconstruct

SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class SensitivityCurve:
    layer: str
    weights: int  # entries of the weight, which weigh its share of the average
    sparsities: tuple[float, ...]
    errors: tuple[float, ...]  # relative output error at each sparsity
    accuracies: tuple[float, ...] | None = None  # the model's, with labels

    def sparsity_within(self, threshold: float) -> float:
        """The highest sparsity whose (interpolated) error stays within `threshold`."""
        points = [(0.0, 0.0), *zip(self.sparsities, np.maximum.accumulate(self.errors))]
        best = 0.0
        for (s0, e0), (s1, e1) in zip(points, points[1:]):
            if e1 <= threshold:
                best = s1
                continue
            if e0 <= threshold < e1:
                best = s0 + (s1 - s0) * (threshold - e0) / (e1 - e0)
            break
        return best


def sensitivity_curve(
    layer: Layer,
    hessian: np.ndarray,
    pattern: Pattern,
    method: str,
    accuracy: Callable[[], float] | None = None,
    sparsities=SPARSITIES,
) -> SensitivityCurve:
    """The layer's curve; `accuracy`, when given, measures the model as it is (the layer is
    pruned in place while it runs, then restored)."""
    matrix = layer.matrix()
    accuracies = [] if accuracy is not None else None
    zeroed = output_error(matrix, np.zeros_like(matrix), hessian)
    targets = (pattern.fixed_sparsity,) if pattern.fixed_sparsity else tuple(sparsities)
    errors = []
    for sparsity in targets:
        if method == "obs":
            pruned = reconstruct(matrix, hessian, sparsity, pattern)
        else:
            pruned = magnitude_prune(matrix, sparsity, pattern)
        errors.append(output_error(matrix, pruned, hessian) / zeroed if zeroed > 0 else 0.0)
        if accuracy is not None:
            layer.store(pruned)
            try:
                accuracies.append(accuracy())
            finally:
                layer.store(matrix)
    return SensitivityCurve(
        layer.node_name,
        matrix.size,
        targets,
        tuple(errors),
        None if accuracies is None else tuple(accuracies),
    )


def distribute(curves: Sequence[SensitivityCurve], target: float) -> dict[str, float]:
    """Per-layer sparsities, each within one error threshold, averaging `target` over the layers'
    weights (or as close as the measured points reach)."""
    total = sum(curve.weights for curve in curves)

    def average(threshold: float) -> float:
        return sum(curve.weights * curve.sparsity_within(threshold) for curve in curves) / total

    low, high = 0.0, max(max(curve.errors) for curve in curves)
    for _ in range(60):
        middle = (low + high) / 2
        if average(middle) < target:
            low = middle
        else:
            high = middle
    return {curve.layer: curve.sparsity_within(high) for curve in curves}


def plot(curves: Sequence[SensitivityCurve], path: Path) -> None:
    """The curves as a PNG line chart (Pillow): sparsity across, relative error up."""
    from PIL import Image, ImageDraw

    width, height, margin = 900, 560, 60
    legend = min(len(curves), 16)
    image = Image.new("RGB", (width + 260, height), "white")
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = margin, height - margin, width - 20, 20
    top = max(1e-9, max(max(curve.errors) for curve in curves))

    def point(sparsity: float, error: float) -> tuple[float, float]:
        return (x0 + (x1 - x0) * (sparsity - 0.4) / 0.6, y0 - (y0 - y1) * error / top)

    draw.line([(x0, y1), (x0, y0), (x1, y0)], fill="black", width=2)
    for tick in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        x, _ = point(tick, 0)
        draw.line([(x, y0), (x, y0 + 5)], fill="black")
        draw.text((x - 10, y0 + 8), f"{tick:.0%}", fill="black")
    for fraction in (0.25, 0.5, 0.75, 1.0):
        _, y = point(0.4, top * fraction)
        draw.line([(x0 - 5, y), (x0, y)], fill="black")
        draw.text((5, y - 6), f"{top * fraction:.2f}", fill="black")
    draw.text((x1 - 120, y0 + 30), "sparsity of the layer", fill="black")
    draw.text((x0 + 10, 2), "output error, relative to a zeroed layer", fill="black")
    palette = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ]
    for index, curve in enumerate(curves):
        colour = palette[index % len(palette)]
        points = [point(s, e) for s, e in zip(curve.sparsities, curve.errors)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        if index < legend:
            draw.line(
                [(width, 30 + 18 * index), (width + 20, 30 + 18 * index)], fill=colour, width=3
            )
            draw.text((width + 25, 24 + 18 * index), curve.layer[-28:], fill="black")
    if len(curves) > legend:
        draw.text((width, 30 + 18 * legend), f"... {len(curves) - legend} more", fill="black")
    image.save(path)
