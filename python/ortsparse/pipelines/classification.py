"""The `image_classification` task: images in, top-k labels and scores out.

Pre-processing is torchvision's ImageNet evaluation transform: the shorter side resized
(bilinear) to the input size / 0.875 (256 for 224), a centre crop of the input size, RGB scaled to
[0, 1] and normalised with ImageNet's mean and standard deviation. Outputs that already are
probabilities (non-negative rows summing to 1, a model ending in Softmax) are taken as they are;
any other output is taken as logits and goes through a softmax.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ortsparse.pipelines.images import resize
from ortsparse.pipelines.pipeline import Pipeline, Timings

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CROP_FRACTION = 0.875
PROBABILITY_SUM_TOLERANCE = 1e-3


@dataclass
class ClassificationOutput:
    """Per image: the top-k ``labels`` (class names where known, else class indices as strings)
    and their ``scores`` (probabilities), best first; ``timings`` in milliseconds."""

    labels: list[list[str]]
    scores: list[list[float]]
    timings: dict[str, float]

    def to_dict(self) -> dict:
        return {"labels": self.labels, "scores": self.scores}


class ImageClassificationPipeline(Pipeline):
    task = "image_classification"
    default_image_size = 224

    @classmethod
    def aliases(cls) -> tuple[str, ...]:
        return ("image_classification", "classification")

    def check_options(self, options: Mapping[str, Any]) -> dict:
        unknown = set(options) - {"top_k"}
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)}; image_classification takes top_k"
            )
        top_k = int(options.get("top_k", 1))
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        return {"top_k": top_k}

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, None]:
        height, width = image.shape[:2]
        short_side = round(min(self.image_height, self.image_width) / CROP_FRACTION)
        scale = short_side / min(height, width)
        # torchvision sizes the longer side by truncation.
        new_width = short_side if width <= height else int(width * scale)
        new_height = short_side if height <= width else int(height * scale)
        resized = resize(image, new_width, new_height)
        top = int(round((new_height - self.image_height) / 2.0))
        left = int(round((new_width - self.image_width) / 2.0))
        cropped = resized[top : top + self.image_height, left : left + self.image_width]
        normalised = (cropped.astype(np.float32) / np.float32(255.0) - IMAGENET_MEAN) / IMAGENET_STD
        return normalised.transpose(2, 0, 1).astype(np.float32), None

    def postprocess(self, outputs: list[np.ndarray], context: None, *, top_k: int) -> dict:
        scores = probabilities(outputs[0].reshape(-1))
        best = np.argsort(-scores, kind="stable")[:top_k]
        return {
            "labels": [self.label(int(index)) for index in best],
            "scores": scores[best].astype(float).round(6).tolist(),
        }

    def make_output(self, results: list[dict], timings: Timings) -> ClassificationOutput:
        return ClassificationOutput(
            [result["labels"] for result in results],
            [result["scores"] for result in results],
            timings.as_dict(),
        )


def probabilities(row: np.ndarray) -> np.ndarray:
    """``row`` itself where it already is a probability distribution, else its softmax."""
    row = row.astype(np.float64)
    if row.min() >= 0 and abs(row.sum() - 1.0) <= PROBABILITY_SUM_TOLERANCE:
        return row
    exponentials = np.exp(row - row.max())
    return exponentials / exponentials.sum()
