"""compile_model and Engine: DeepSparse's engine API over an ONNX Runtime session of the rewrite.

engine = ortsparse.compile_model("model.onnx", batch_size=1)
outputs = engine.run(engine.generate_random_inputs())
print(engine.benchmark())
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime

from ortsparse import isa
from ortsparse.benchmark import (
    BenchmarkResults,
    available_cores,
    measure_iterations,
    session_runner,
)
from ortsparse.inputs import (
    InputError,
    input_specs,
    model_input_specs,
    random_inputs,
    resolve_input_shapes,
    to_feed,
)
from ortsparse.session import InferenceSession
from ortsparse.verification import default_input_shapes


def compile_model(
    model: str | os.PathLike | onnx.ModelProto,
    batch_size: int = 1,
    num_cores: int | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Engine:
    """An Engine running ``model`` (a path or a ModelProto) rewritten by ortsparse, for inputs
    of ``batch_size`` items, on ``num_cores`` intra-op threads (default: every core this process
    may use). The rewrite is judged and verified at the sizes ``input_shapes`` gives (by input
    name), else at ``batch_size`` and 64 for any other symbolic dim."""
    return Engine(model, batch_size, num_cores, cache_dir=cache_dir, input_shapes=input_shapes)


class Engine:
    """A model compiled for one batch size and core count (see compile_model).

    Inputs and outputs are lists of numpy arrays in the model's input and output order. The batch
    size is that of every input whose leading dim is symbolic; a model whose leading dim is fixed
    only runs at that size (ValueError otherwise).
    """

    def __init__(
        self,
        model: str | os.PathLike | onnx.ModelProto,
        batch_size: int = 1,
        num_cores: int | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_cores is not None and num_cores < 1:
            raise ValueError(f"num_cores must be at least 1, got {num_cores}")
        self._model_path = None if isinstance(model, onnx.ModelProto) else os.fspath(model)
        self._num_cores = num_cores or available_cores()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._num_cores
        options.inter_op_num_threads = 1
        self._session = InferenceSession(
            model.SerializeToString() if self._model_path is None else self._model_path,
            options,
            providers=["CPUExecutionProvider"],
            cache_dir=cache_dir,
            input_shapes={
                **(_verification_shapes(model, batch_size) or {}),
                **(input_shapes or {}),
            },
        )
        self._specs = input_specs(self._session)
        try:
            self._shapes = resolve_input_shapes(self._specs, batch_size).shapes
        except InputError as error:
            raise ValueError(f"cannot compile for batch_size={batch_size}: {error}") from None
        self._batch_size = batch_size
        self._output_names = [output.name for output in self._session.get_outputs()]
        self._cpu = isa.cpu_report()

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.run(inputs)

    def __repr__(self) -> str:
        prepared = self._session.ortsparse_model
        return (
            f"{type(self).__name__}(model_path={self._model_path!r}, "
            f"batch_size={self._batch_size}, num_cores={self._num_cores}, "
            f"rewritten='{prepared.rewritten_nodes} of {prepared.candidate_nodes} "
            "MatMul/Gemm/Conv nodes', "
            f"cpu_avx_type={self.cpu_avx_type!r}, cpu_vnni={self.cpu_vnni})"
        )

    @property
    def model_path(self) -> str | None:
        """The path the engine was compiled from; None for a ModelProto."""
        return self._model_path

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def num_cores(self) -> int:
        return self._num_cores

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self._specs]

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    @property
    def session(self) -> InferenceSession:
        """The ortsparse.InferenceSession underneath."""
        return self._session

    @property
    def cpu_avx_type(self) -> str:
        """The vector ISA of the ortsparse kernels in use: "avx512", "avx2" or "scalar"."""
        return isa.cpu_avx_type(self._cpu)

    @property
    def cpu_vnni(self) -> bool:
        """Whether the INT8 kernels in use have AVX-512 VNNI (vpdpbusd)."""
        return isa.cpu_vnni(self._cpu)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for ``inputs``, both in graph order."""
        self._check(inputs)
        feeds = {spec.name: to_feed(spec, array) for spec, array in zip(self._specs, inputs)}
        return self._session.run(None, feeds)

    def timed_run(self, inputs: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
        """run(inputs) and the seconds it took."""
        start = time.perf_counter()
        outputs = self.run(inputs)
        return outputs, time.perf_counter() - start

    def mapped_run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """run(inputs) as a dict from output name to array."""
        return dict(zip(self._output_names, self.run(inputs)))

    def generate_random_inputs(self, seed: int = 0) -> list[np.ndarray]:
        """Random inputs of the compiled shapes (ortsparse.inputs.random_inputs)."""
        return random_inputs(self._specs, self._shapes, seed)

    def benchmark(
        self,
        inputs: list[np.ndarray] | None = None,
        num_iterations: int = 20,
        num_warmup_iterations: int = 5,
    ) -> BenchmarkResults:
        """Times ``num_iterations`` runs on ``inputs`` (default: generate_random_inputs()) after
        ``num_warmup_iterations`` untimed ones."""
        inputs = self.generate_random_inputs() if inputs is None else inputs
        self._check(inputs)
        return measure_iterations(
            session_runner(self._session, self._specs, inputs),
            self._batch_size,
            num_iterations,
            num_warmup_iterations,
        )

    def _check(self, inputs: list[np.ndarray]) -> None:
        if len(inputs) != len(self._specs):
            raise ValueError(
                f"the model takes {len(self._specs)} input(s) ({', '.join(self.input_names)}), "
                f"got {len(inputs)}"
            )
        for spec, array in zip(self._specs, inputs):
            expected = self._shapes[spec.name]
            if (
                spec.shape
                and not isinstance(spec.shape[0], int)
                and array.shape[:1] != expected[:1]
            ):
                raise ValueError(
                    f"input '{spec.name}' has batch size {array.shape[0] if array.ndim else '-'}, "
                    f"the engine was compiled for {self._batch_size}"
                )


def _verification_shapes(
    model: str | os.PathLike | onnx.ModelProto, batch_size: int
) -> dict[str, tuple[int, ...]] | None:
    """The input shapes to judge and verify the rewrite at: those of ``batch_size`` items; None
    for a file onnx cannot read, which ONNX Runtime then reports on."""
    try:
        proto = (
            model
            if isinstance(model, onnx.ModelProto)
            else onnx.load(os.fspath(model), load_external_data=False)
        )
    except Exception:  # noqa: BLE001 - whatever onnx raises, ORT's own error says it better
        return None
    return default_input_shapes(model_input_specs(proto), batch_size)
