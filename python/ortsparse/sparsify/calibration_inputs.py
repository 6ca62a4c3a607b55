"""Calibration inputs for sparsify: an .npz of arrays keyed by input name, or a folder of images
prepared as an image pipeline prepares them.

An .npz may also hold `labels` (one class index per sample, when no model input has that name):
then `--analyze` reports the model's top-1 accuracy on them as each layer is pruned.

Samples run BATCH at a time where the batch dimension is symbolic, else in the model's own fixed
batches: memory stays bounded whatever their number.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from ortsparse.inputs import InputSpec, model_input_specs, numpy_dtype, to_feed

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: How a folder's images become model inputs: as these pipelines prepare them.
IMAGE_PREPARATIONS = ("image_classification", "yolo")
BATCH = 16
LABELS = "labels"


class CalibrationError(ValueError):
    """Calibration inputs that do not fit the model."""


class CalibrationInputs:
    """The samples of `path` for `model_path`'s inputs, at most `max_samples` of them."""

    def __init__(
        self,
        path: str | os.PathLike,
        model_path: str | os.PathLike,
        max_samples: int,
        image_preparation: str = "image_classification",
    ) -> None:
        self.path = Path(path)
        self.model_path = Path(model_path)
        self.specs = model_input_specs(onnx.load(str(model_path), load_external_data=False))
        self.labels: list[np.ndarray] | None = None  # per batch, from an .npz's `labels`
        if self.path.is_dir():
            self._feeds = self._image_feeds(image_preparation, max_samples)
        elif self.path.is_file():
            self._feeds = self._npz_feeds(max_samples)
        else:
            raise CalibrationError(f"no calibration file or folder at {self.path}")

    def __iter__(self) -> Iterator[dict]:
        return iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def _fixed_batch(self) -> int | None:
        fixed = [spec.shape[0] for spec in self.specs if spec.shape and _fixed(spec.shape[0])]
        return fixed[0] if fixed else None

    def _batch_bounds(self, samples: int) -> list[tuple[int, int]]:
        """(start, end) of each batch: the model's fixed batches (a remainder dropped), else
        BATCH samples at a time."""
        fixed = self._fixed_batch()
        if fixed is None:
            return [(start, min(start + BATCH, samples)) for start in range(0, samples, BATCH)]
        if samples < fixed:
            raise CalibrationError(f"{self.path} holds fewer samples than one batch of {fixed}")
        return [(start, start + fixed) for start in range(0, samples // fixed * fixed, fixed)]

    def _npz_feeds(self, max_samples: int) -> list[dict]:
        try:
            archive = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CalibrationError(f"{self.path} is not an .npz archive numpy can read ({error})")
        names = [spec.name for spec in self.specs]
        missing = [name for name in names if name not in archive.files]
        if missing:
            raise CalibrationError(
                f"{self.path} has no array for input(s) {', '.join(missing)}; it must hold one "
                f"array per model input, keyed by name ({', '.join(names)}), samples first"
            )
        arrays = {spec.name: self._checked(spec, archive[spec.name]) for spec in self.specs}
        counts = {len(array) for array in arrays.values()}
        if len(counts) != 1:
            raise CalibrationError(
                f"the arrays of {self.path} hold different numbers of samples: "
                + ", ".join(f"{name}: {len(array)}" for name, array in arrays.items())
            )
        samples = min(counts.pop(), max_samples)
        if samples == 0:
            raise CalibrationError(f"{self.path} holds no samples")
        if LABELS in archive.files and LABELS not in names:
            labels = archive[LABELS]
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise CalibrationError(
                    f"{self.path}: labels must be one class index (an integer) per sample, got "
                    f"an array of {labels.dtype} with shape {list(labels.shape)}"
                )
            if len(labels) < samples:
                raise CalibrationError(
                    f"{self.path} holds {len(labels)} labels for {samples} samples"
                )
            self.labels = [labels[start:end] for start, end in self._batch_bounds(samples)]
        return [
            {spec.name: to_feed(spec, arrays[spec.name][start:end]) for spec in self.specs}
            for start, end in self._batch_bounds(samples)
        ]

    def _checked(self, spec: InputSpec, array: np.ndarray) -> np.ndarray:
        if array.ndim != len(spec.shape):
            raise CalibrationError(
                f"input '{spec.name}' has rank {len(spec.shape)} (samples first), but its "
                f"calibration array has shape {list(array.shape)}"
            )
        for axis, (dim, size) in enumerate(zip(spec.shape, array.shape)):
            if axis > 0 and _fixed(dim) and dim != size:
                raise CalibrationError(
                    f"input '{spec.name}' is {list(spec.shape)}, but its calibration array has "
                    f"shape {list(array.shape)}"
                )
        dtype = numpy_dtype(spec.onnx_type)
        if np.issubdtype(dtype, np.floating) != np.issubdtype(array.dtype, np.floating):
            raise CalibrationError(
                f"input '{spec.name}' is {spec.type}, but its calibration array is {array.dtype}"
            )
        return array.astype(dtype, copy=False)

    def _image_feeds(self, preparation: str, max_samples: int) -> list[dict]:
        from ortsparse.pipelines import Pipeline
        from ortsparse.pipelines.images import load_rgb

        if preparation not in IMAGE_PREPARATIONS:
            raise CalibrationError(
                f"images are prepared as {' or '.join(IMAGE_PREPARATIONS)} pipelines do, not "
                f"{preparation!r}"
            )
        if len(self.specs) != 1:
            raise CalibrationError(
                f"a folder of images calibrates a model with one image input; this one has "
                f"{len(self.specs)}: give an .npz keyed by input name instead"
            )
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CalibrationError(f"{self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        try:
            pipeline = Pipeline.create(
                preparation,
                self.model_path,
                batch_size=self._fixed_batch() or 1,
                engine_type="onnxruntime",
            )
        except ValueError as error:
            raise CalibrationError(f"cannot prepare images for this model: {error}") from None
        spec = self.specs[0]
        images = [pipeline.preprocess(load_rgb(path))[0] for path in files[:max_samples]]
        return [
            {spec.name: np.stack(images[start:end])}
            for start, end in self._batch_bounds(len(images))
        ]


def _fixed(dim) -> bool:
    """Whether a dim as ORT reports it is a size (some exporters write -1 for a dynamic one)."""
    return isinstance(dim, int) and dim > 0
