"""rewrite_file: load (with external data), rewrite, save (as external data when large)."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ortsparse.rewriter.cost_data import CostModels
from ortsparse.rewriter.decisions import Decision, RewriteResult
from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.pipeline import Progress, estimated_size_bytes, rewrite_owned_model
from ortsparse.rewriter.report import format_report

# Past this the tensors go to a data file beside the model: a protobuf message cannot exceed 2 GB,
# and the margin covers what estimated_size_bytes leaves out.
EXTERNAL_DATA_THRESHOLD_BYTES = 1_800_000_000


# Rewrites a model keeping the nodes named in the mapping (with the decisions to report for them)
# and converting those in the collection whatever the cost model predicts.
Rewrite = Callable[[Mapping[str, Decision], Collection[str]], RewriteResult]
# Chooses among the rewrites of a model (ortsparse.verification.verify_rewrite, on this CPU).
Verify = Callable[[onnx.ModelProto, Rewrite], RewriteResult]


def rewrite_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    min_sparsity: float | None = None,
    report: bool = False,
    progress: Progress | None = None,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD_BYTES,
    verify: Verify | None = None,
    cost_models: CostModels | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> RewriteResult:
    """Rewrites the model at ``in_path`` into ``out_path``; prints the report when ``report``.
    ``verify``: what decides, given the original and a way to rewrite it keeping some nodes,
    which rewrite is written (None: the cost model's); ``cost_models`` and ``input_shapes`` as
    rewrite_owned_model takes them.

    A result larger than ``external_data_threshold`` bytes is saved with its tensors in
    ``<out file name>.data`` beside it; the returned model then refers to that file for them.
    Raises RewriteError when the input is missing, unreadable, not ONNX or malformed.
    """
    tell = progress or (lambda message: None)
    in_path, out_path = Path(in_path), Path(out_path)
    tell(f"checking {in_path}")
    check_model_file(in_path)
    tell(f"loading {in_path}")
    original = _load(in_path)

    def rewrite(keep: Mapping[str, Decision], convert: Collection[str]) -> RewriteResult:
        model = onnx.ModelProto()
        model.CopyFrom(original)
        return rewrite_owned_model(
            model,
            min_sparsity=min_sparsity,
            progress=progress,
            checked=True,
            keep=keep,
            cost_models=cost_models,
            input_shapes=input_shapes,
            convert=convert,
        )

    if verify is None:
        result = rewrite_owned_model(
            original,
            min_sparsity=min_sparsity,
            progress=progress,
            checked=True,
            cost_models=cost_models,
            input_shapes=input_shapes,
        )
    else:
        result = verify(original, rewrite)
    tell(f"saving {out_path}")
    save_model(result.model, out_path, external_data_threshold)
    if report:
        print(format_report(result.decisions, result.decided_by))
    return result


def save_model(
    model: onnx.ModelProto, path: Path, external_data_threshold: int = EXTERNAL_DATA_THRESHOLD_BYTES
) -> None:
    """Saves ``model`` at ``path``, its tensors in ``<file name>.data`` beside it when the model
    is larger than ``external_data_threshold`` bytes."""
    if estimated_size_bytes(model) <= external_data_threshold:
        onnx.save_model(model, path)
        return
    data_file = path.with_name(f"{path.name}.data")
    data_file.unlink(missing_ok=True)  # onnx appends to an existing data file
    onnx.save_model(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_file.name,
        size_threshold=1024,
    )


def check_model_file(path: Path) -> None:
    """Raises RewriteError unless ``path`` is a readable, valid ONNX model."""
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise RewriteError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        onnx.checker.check_model(str(path))  # the path form also handles models over 2 GB
    except onnx.checker.ValidationError as error:
        raise RewriteError(f"{path} is not a valid ONNX model: {_first_line(error)}") from error


def _load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(path, load_external_data=True)
    except (OSError, DecodeError, ValueError) as error:
        raise RewriteError(f"cannot load {path}: {_first_line(error)}") from error


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
