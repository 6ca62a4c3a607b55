"""Pipeline: raw images in, task results out, on ortsparse's sparse execution (or plain ONNX
Runtime), with DeepSparse's API shape: ``Pipeline.create(task=..., model_path=...)``.

A pipeline pre-processes each image, runs the engine on batches of ``batch_size`` images (a call
with more images runs several batches, a last short one padded where the model's batch size is
fixed) and post-processes each image's outputs. It times the three stages of every call.
"""

from __future__ import annotations

import ast
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime

from ortsparse.benchmark import available_cores
from ortsparse.pipelines.images import ImageInput, load_rgb

ENGINE_TYPES = ("ortsparse", "onnxruntime")
STAGES = ("pre_process", "engine_forward", "post_process")


@dataclass
class Timings:
    """Seconds spent in each stage, summed over the calls recorded."""

    pre_process: float = 0.0
    engine_forward: float = 0.0
    post_process: float = 0.0
    calls: int = 0
    images: int = 0

    @property
    def total(self) -> float:
        return self.pre_process + self.engine_forward + self.post_process

    def add(self, other: Timings) -> None:
        for name in (*STAGES, "calls", "images"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        """Milliseconds per stage and in all."""
        return {**{name: 1000 * getattr(self, name) for name in STAGES}, "total": 1000 * self.total}


@dataclass
class ModelInput:
    """What a pipeline reads off its model's image input."""

    name: str
    batch: int | None  # None where the batch dim is symbolic
    height: int | None
    width: int | None
    metadata: dict[str, str] = field(default_factory=dict)


class Pipeline(ABC):
    """Base of the task pipelines; ``Pipeline.create`` picks the one for a task."""

    TASKS: ClassVar[dict[str, type[Pipeline]]] = {}
    task: ClassVar[str]
    default_image_size: ClassVar[int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for alias in cls.aliases():
            Pipeline.TASKS[alias] = cls

    @classmethod
    def aliases(cls) -> tuple[str, ...]:
        return (cls.task,)

    @staticmethod
    def create(task: str, model_path: str | os.PathLike, **kwargs: Any) -> Pipeline:
        """The pipeline for ``task`` ("yolo", "image_classification") on ``model_path``; keyword
        arguments as the task's pipeline takes them (batch_size, num_cores, engine_type, ...)."""
        pipeline_class = Pipeline.TASKS.get(task.lower().replace("-", "_"))
        if pipeline_class is None:
            raise ValueError(f"unknown task {task!r}; tasks: {', '.join(sorted(Pipeline.TASKS))}")
        return pipeline_class(model_path, **kwargs)

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        batch_size: int = 1,
        num_cores: int | None = None,
        engine_type: str = "ortsparse",
        image_size: int | Sequence[int] | None = None,
        class_names: Sequence[str] | Mapping | str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        verify: bool = True,
    ) -> None:
        """``engine_type`` "ortsparse" runs the model's rewrite (ortsparse.InferenceSession, its
        rewrite cached in ``cache_dir``, verified on this CPU unless not ``verify``),
        "onnxruntime" the model as it is; ``image_size`` is used where the model's input size is
        symbolic and its metadata has no `imgsz`; ``class_names`` replace those of the model's
        `names` metadata."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_cores is not None and num_cores < 1:
            raise ValueError(f"num_cores must be at least 1, got {num_cores}")
        if engine_type not in ENGINE_TYPES:
            raise ValueError(f"engine_type must be one of {ENGINE_TYPES}, got {engine_type!r}")
        self.model_path = os.fspath(model_path)
        self.engine_type = engine_type
        self.num_cores = num_cores or available_cores()
        model_input = _read_model_input(self.model_path)
        if model_input.batch is not None and model_input.batch != batch_size:
            raise ValueError(
                f"the model takes batches of {model_input.batch} images, not batch_size="
                f"{batch_size}"
            )
        self.batch_size = batch_size
        self.input_name = model_input.name
        self.image_height, self.image_width = _image_size(
            model_input, image_size, self.default_image_size
        )
        self.class_names = _class_names(class_names, model_input.metadata)
        self._fixed_batch = model_input.batch is not None
        self.session = self._session(cache_dir, verify)
        self.timings = Timings()  # every call's, summed
        self._timings_lock = threading.Lock()  # a server calls from several threads

    def _session(self, cache_dir, verify: bool) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.num_cores
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if self.engine_type == "onnxruntime":
            return onnxruntime.InferenceSession(self.model_path, options, providers=providers)
        from ortsparse.session import InferenceSession

        shape = [self.batch_size, 3, self.image_height, self.image_width]
        return InferenceSession(
            self.model_path,
            options,
            providers=providers,
            cache_dir=cache_dir,
            verify=verify,
            input_shapes={self.input_name: shape},
        )

    # --- the task's parts -------------------------------------------------------------------

    @abstractmethod
    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Any]:
        """An RGB uint8 image as the model's input [3, H, W], and what post-processing needs
        of it."""

    @abstractmethod
    def postprocess(self, outputs: list[np.ndarray], context: Any, **options: Any) -> dict:
        """One image's results from its rows of the model's outputs."""

    @abstractmethod
    def make_output(self, results: list[dict], timings: Timings):
        """The call's output object from each image's results."""

    @abstractmethod
    def check_options(self, options: Mapping[str, Any]) -> dict:
        """The call's options, checked; an unknown or bad option is a ValueError."""

    # --- running ----------------------------------------------------------------------------

    def __call__(self, images: ImageInput | Sequence[ImageInput] | None = None, **options: Any):
        """The task's results for ``images`` (one, or a list of any length)."""
        if images is None:
            raise ValueError("give the images to run on: images=[...]")
        if isinstance(images, (str, os.PathLike, bytes, bytearray, np.ndarray)) or not isinstance(
            images, Sequence
        ):
            images = [images]
        if not images:
            raise ValueError("images is empty")
        checked = self.check_options(options)
        timings = Timings(calls=1, images=len(images))
        results = []
        for start in range(0, len(images), self.batch_size):
            results += self._run_batch(images[start : start + self.batch_size], checked, timings)
        with self._timings_lock:
            self.timings.add(timings)
        return self.make_output(results, timings)

    def _run_batch(self, images: Sequence[ImageInput], options: dict, timings: Timings) -> list:
        began = time.perf_counter()
        prepared = [self.preprocess(load_rgb(image)) for image in images]
        batch = np.stack([array for array, _ in prepared])
        if self._fixed_batch and len(images) < self.batch_size:
            padding = np.zeros((self.batch_size - len(images), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, padding])
        engine_began = time.perf_counter()
        outputs = self.session.run(None, {self.input_name: batch})
        post_began = time.perf_counter()
        results = [
            self.postprocess([output[index] for output in outputs], context, **options)
            for index, (_, context) in enumerate(prepared)
        ]
        ended = time.perf_counter()
        timings.pre_process += engine_began - began
        timings.engine_forward += post_began - engine_began
        timings.post_process += ended - post_began
        return results

    def label(self, class_index: int) -> str:
        if self.class_names is not None and 0 <= class_index < len(self.class_names):
            return self.class_names[class_index]
        return str(class_index)


def _read_model_input(path: str) -> ModelInput:
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and OSError share no narrower base
        raise ValueError(f"cannot read the ONNX model {path}: {error}") from None
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(value.name for value in inputs)
        raise ValueError(f"an image pipeline needs a model with one input, {path} has: {names}")
    (value,) = inputs
    dims = [
        dim.dim_value if dim.HasField("dim_value") else None
        for dim in value.type.tensor_type.shape.dim
    ]
    if len(dims) != 4 or dims[1] not in (3, None):
        raise ValueError(
            f"an image pipeline needs an input [batch, 3, height, width]; {value.name} is "
            f"{_describe(value)}"
        )
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    return ModelInput(value.name, dims[0], dims[2], dims[3], metadata)


def _describe(value: onnx.ValueInfoProto) -> str:
    dims = [
        str(dim.dim_value) if dim.HasField("dim_value") else dim.dim_param or "?"
        for dim in value.type.tensor_type.shape.dim
    ]
    return f"[{', '.join(dims)}]"


def _image_size(model_input: ModelInput, requested, default: int) -> tuple[int, int]:
    """(height, width): the model's fixed dims, else its `imgsz` metadata, else ``requested``,
    else ``default``."""
    asked = None if requested is None else _pair(requested, "image_size")
    if model_input.height is not None and model_input.width is not None:
        fixed = (model_input.height, model_input.width)
        if asked is not None and asked != fixed:
            raise ValueError(f"the model's input is fixed at {fixed[0]}x{fixed[1]}, not {asked}")
        return fixed
    if "imgsz" in model_input.metadata and asked is None:
        try:
            return _pair(ast.literal_eval(model_input.metadata["imgsz"]), "imgsz")
        except (ValueError, SyntaxError):
            pass  # metadata we cannot read: the default below
    return asked or (default, default)


def _pair(size, what: str) -> tuple[int, int]:
    values = [size, size] if isinstance(size, int) else list(size)
    if len(values) != 2 or not all(isinstance(v, int) and v > 0 for v in values):
        raise ValueError(f"{what} must be a positive int or [height, width], got {size!r}")
    return values[0], values[1]


def _class_names(given, metadata: Mapping[str, str]) -> list[str] | None:
    """Names by class index: ``given`` (a list, a {index: name} mapping or a JSON file of
    either), else the model's `names` metadata (as Ultralytics exports write it), else None."""
    if given is None:
        if "names" not in metadata:
            return None
        try:
            given = ast.literal_eval(metadata["names"])
        except (ValueError, SyntaxError):
            return None
    elif isinstance(given, (str, os.PathLike)):
        try:
            given = json.loads(Path(given).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"class_names: cannot read {given} as JSON ({error})") from None
    if isinstance(given, Mapping):
        try:
            by_index = {int(index): str(name) for index, name in given.items()}
        except ValueError:
            raise ValueError("class_names: a mapping's keys must be class indices") from None
        return [by_index.get(index, str(index)) for index in range(max(by_index, default=-1) + 1)]
    if isinstance(given, Sequence) and not isinstance(given, str):
        return [str(name) for name in given]
    raise ValueError(f"class_names must be a list, a mapping or a JSON file, got {given!r}")
