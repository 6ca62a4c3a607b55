"""Rewriting a model on load, through an on-disk cache (ortsparse.InferenceSession, compile_model
and `ortsparse benchmark` share it).

An entry's key is a SHA-256 over the model's bytes and those of its external data files, the
rewriter (ortsparse's version and the source of its rewriter package, so that a changed rewriter
never serves stale rewrites), onnx's and ONNX Runtime's versions, the CPU (vendor, family, model,
best kernel family) and the kernel family in use, the cost-model data that judged (a new
calibration makes new entries), and the rewrite and verification options (threads, input
shapes): a rewrite verified on one CPU is never served on another. The entry is a directory
named by the key, holding ``result.json`` and, when something was rewritten, ``model.onnx`` (and
``model.onnx.data`` for a large model); it is written in a temporary directory beside it and
renamed into place, so readers never see half an entry, and concurrent writers of one entry
leave one of their identical copies.

An entry heals: ``result.json`` records each file's size and SHA-256, and an entry whose record
does not parse, or whose files are missing or differ from it (a full disk, a killed copy, another
tool), is a miss: it is deleted and made again, with one warning. Reading an entry marks it used;
after each new entry the least recently used ones are deleted until the cache holds at most
$ORTSPARSE_CACHE_LIMIT_MB megabytes (default 2048). `ortsparse cache list|clear` shows and
empties it.

The directory is the ``cache_dir`` argument, else ``models`` in ortsparse's cache root
($ORTSPARSE_CACHE_DIR, else $XDG_CACHE_HOME/ortsparse, ~/.cache/ortsparse by default). When it
cannot be written, a warning says so and the rewritten model is kept in memory instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Union

import onnx
import onnxruntime
from google.protobuf.message import DecodeError
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

import ortsparse
from ortsparse.rewriter.cost_data import CACHE_DIR_ENV, cache_root, cost_models, current_cpu
from ortsparse.rewriter.cost_model import current_kernel_family
from ortsparse.rewriter.decisions import Decision, RewriteResult
from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.model_io import save_model
from ortsparse.rewriter.pipeline import Progress, rewrite_owned_model
from ortsparse.verification import DEFAULT_SECONDS, verify_rewrite

_MODEL_FILE = "model.onnx"
_RESULT_FILE = "result.json"
_CHUNK_BYTES = 1 << 24
LIMIT_ENV = "ORTSPARSE_CACHE_LIMIT_MB"
DEFAULT_LIMIT_MB = 2048

ModelSource = Union[str, bytes]  # what ONNX Runtime loads: a path, or a serialized model


@dataclass(frozen=True)
class PreparedModel:
    """The model to hand to ONNX Runtime, and what the rewriter made of it."""

    source: ModelSource
    has_ortsparse_ops: bool  # the session needs the ortsparse library registered
    rewritten_nodes: int
    candidate_nodes: int  # MatMul/Gemm/Conv nodes the rewriter judged
    cache_entry: Path | None  # None: rewritten in memory only, or not rewritten at all


def default_cache_dir() -> Path:
    return cache_root() / "models"


def prepare_model(
    path_or_bytes: str | os.PathLike | bytes,
    *,
    cache_dir: str | os.PathLike | None = None,
    min_sparsity: float | None = None,
    progress: Progress | None = None,
    verify: bool = True,
    threads: int = 0,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    verify_seconds: float = DEFAULT_SECONDS,
) -> PreparedModel:
    """The rewrite of ``path_or_bytes`` (a path or a serialized ONNX model), from the cache or
    made now and cached.

    What cannot be rewritten goes to ONNX Runtime unchanged: input ortsparse cannot read or parse
    (ORT then reports what is wrong with it, as it would without ortsparse), and models the
    rewriter rejects (with a warning). ``min_sparsity`` as in rewrite_model. With ``verify`` the
    rewrite is timed against the original on this CPU, on ``threads`` intra-op threads (0: ORT's
    default) and inputs of ``input_shapes`` (by input name; others as verification.py says),
    and ORT's nodes are put back wherever ortsparse is not faster (verification.py); the cost
    model judges at those sizes too.
    """
    original: ModelSource = (
        path_or_bytes if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
    )
    loaded = _load(original)
    if loaded is None:
        return PreparedModel(original, False, 0, 0, None)
    shapes = {name: [int(dim) for dim in shape] for name, shape in (input_shapes or {}).items()}
    options = {"input_shapes": shapes, "verification": {"threads": threads} if verify else None}
    model, key = loaded[0], _cache_key(loaded[1], min_sparsity, options)
    entry = Path(cache_dir if cache_dir is not None else default_cache_dir()) / key
    cached = _read_entry(entry, original)
    if isinstance(cached, PreparedModel):
        return cached
    if cached:
        warnings.warn(
            f"the ortsparse rewrite cached in {entry} is damaged ({cached}); rewriting the model "
            "again",
            RuntimeWarning,
            2,
        )
        shutil.rmtree(entry, ignore_errors=True)
    has_ops = _has_ortsparse_ops(model)
    try:
        if verify and not has_ops:
            result = verify_rewrite(
                model,
                functools.partial(_rewrite_copy, model, min_sparsity, progress, input_shapes),
                threads=threads,
                input_shapes=input_shapes,
                seconds=verify_seconds,
                progress=progress,
            )
        else:
            result = rewrite_owned_model(
                model, min_sparsity=min_sparsity, progress=progress, input_shapes=input_shapes
            )
    except RewriteError as error:
        warnings.warn(
            f"ortsparse cannot rewrite the model ({error}); it runs unchanged", RuntimeWarning, 2
        )
        return PreparedModel(original, has_ops, 0, 0, None)
    summary = {
        "has_ortsparse_ops": has_ops or result.rewritten_count > 0,
        "rewritten_nodes": result.rewritten_count,
        "candidate_nodes": len(result.decisions),
        "model": "(bytes)" if isinstance(original, bytes) else Path(original).name,
    }
    try:
        _write_entry(entry, summary, result.model)
        evict(entry.parent, keep=entry)
    except OSError as error:
        warnings.warn(
            f"cannot write the ortsparse rewrite cache in {entry.parent} "
            f"({error.strerror or error}); the rewritten model is kept in memory (set "
            f"{CACHE_DIR_ENV} or pass cache_dir to cache it elsewhere)",
            RuntimeWarning,
            2,
        )
        return _in_memory(original, summary, result.model, entry.parent)
    return _prepared(entry, original, summary)


def _rewrite_copy(
    model: onnx.ModelProto,
    min_sparsity: float | None,
    progress: Progress | None,
    input_shapes: Mapping[str, Sequence[int]] | None,
    keep: Mapping[str, Decision],
    convert: Collection[str],
) -> RewriteResult:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return rewrite_owned_model(
        copy,
        min_sparsity=min_sparsity,
        progress=progress,
        keep=keep,
        input_shapes=input_shapes,
        convert=convert,
    )


def unchanged_model(path: str | os.PathLike) -> PreparedModel:
    """The model at ``path`` as it is, for ONNX Runtime on its own; it needs the ortsparse library
    only if the model already holds ortsparse ops (a rewritten model)."""
    model = onnx.load(os.fspath(path), load_external_data=False)
    return PreparedModel(os.fspath(path), _has_ortsparse_ops(model), 0, 0, None)


def _load(original: ModelSource) -> tuple[onnx.ModelProto, Iterator[bytes]] | None:
    """The model with its external data, and the chunks of bytes its content is; None when
    ortsparse cannot read it."""
    try:
        data = original if isinstance(original, bytes) else Path(original).read_bytes()
        model = onnx.load_model_from_string(data)
    except (OSError, DecodeError):
        return None
    external_files = sorted(
        {
            ExternalDataInfo(tensor).location
            for tensor in _tensors(model.graph)
            if uses_external_data(tensor)
        }
    )
    if not external_files:
        return model, iter([data])
    # ORT finds the external data of a model given as bytes in the working directory.
    base_dir = Path.cwd() if isinstance(original, bytes) else Path(original).parent
    try:
        onnx.load_external_data_for_model(model, str(base_dir))
    except (OSError, ValueError, onnx.checker.ValidationError):  # missing, short, or outside
        return None
    return model, _chunks(data, [base_dir / location for location in external_files])


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def _chunks(data: bytes, files: list[Path]) -> Iterator[bytes]:
    yield data
    for path in files:
        yield path.name.encode()
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                yield chunk


def _cache_key(content: Iterator[bytes], min_sparsity: float | None, options: dict) -> str:
    digest = hashlib.sha256()
    cpu = current_cpu()
    options = {
        "rewriter": _rewriter_fingerprint(),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "cpu": list(cpu.key) if cpu is not None else None,
        "kernel_family": current_kernel_family(),
        "cost_data": cost_models().fingerprint if min_sparsity is None else None,
        "min_sparsity": min_sparsity,
        **options,
    }
    digest.update(json.dumps(options, sort_keys=True).encode())
    for chunk in content:
        digest.update(chunk)
    return digest.hexdigest()


@cache
def _rewriter_fingerprint() -> str:
    """ortsparse's version and a digest of the installed rewriter's source and data files."""
    package = Path(__file__).with_name("rewriter")
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".json"):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return f"{ortsparse.__version__}+{digest.hexdigest()[:16]}"


def _has_ortsparse_ops(model: onnx.ModelProto) -> bool:
    return any(opset.domain == ortsparse.OP_DOMAIN for opset in model.opset_import)


def _read_entry(entry: Path, original: ModelSource) -> PreparedModel | str:
    """The entry, marked used; "" when there is none, what is wrong with it when it is damaged."""
    record = entry / _RESULT_FILE
    if not entry.exists():
        return ""
    try:
        summary = json.loads(record.read_text())
        files = summary["files"]
        rewritten = summary["rewritten_nodes"]
        if not isinstance(files, dict) or not all(isinstance(f, dict) for f in files.values()):
            raise TypeError("the file records are not a mapping of name to size and hash")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its {_RESULT_FILE} cannot be read: {error}"
    if rewritten and _MODEL_FILE not in files:
        return f"it records no {_MODEL_FILE}"
    for name, expected in files.items():
        problem = _file_problem(entry / name, expected)
        if problem:
            return f"{name} {problem}"
    try:
        os.utime(record)
    except OSError:
        pass  # a read-only cache serves as it is, without recency
    return _prepared(entry, original, summary)


def _file_problem(path: Path, expected: dict) -> str:
    """How ``path`` differs from its record ({"size", "sha256"}), or ""."""
    try:
        size = path.stat().st_size
    except OSError:
        return "is missing"
    if size != expected.get("size"):
        return f"holds {size} bytes, not the {expected.get('size')} recorded"
    if _sha256(path) != expected.get("sha256"):
        return "differs from what was written"
    return ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _prepared(entry: Path, original: ModelSource, summary: dict) -> PreparedModel:
    """The entry's rewritten model, or the original when the rewriter changed nothing."""
    return PreparedModel(
        str(entry / _MODEL_FILE) if summary["rewritten_nodes"] else original,
        summary["has_ortsparse_ops"],
        summary["rewritten_nodes"],
        summary["candidate_nodes"],
        entry,
    )


def _write_entry(entry: Path, summary: dict, model: onnx.ModelProto) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        if summary["rewritten_nodes"]:
            save_model(model, staging / _MODEL_FILE)
        files = {
            path.name: {"size": path.stat().st_size, "sha256": _sha256(path)}
            for path in sorted(staging.iterdir())
        }
        (staging / _RESULT_FILE).write_text(json.dumps({**summary, "files": files}))
        try:
            staging.rename(entry)
        except OSError:
            if not (entry / _RESULT_FILE).is_file():
                raise
            # Another process wrote the same entry first; its content is the same.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _in_memory(
    original: ModelSource, summary: dict, model: onnx.ModelProto, cache_dir: Path
) -> PreparedModel:
    source = original
    if summary["rewritten_nodes"]:
        try:
            source = model.SerializeToString()
        except ValueError as error:  # protobuf's 2 GB limit
            raise RuntimeError(
                f"the rewritten model is too large to keep in memory ({error}); ONNX Runtime can "
                f"only load it from a file, and the cache directory {cache_dir} cannot be written"
            ) from error
    return PreparedModel(
        source,
        summary["has_ortsparse_ops"],
        summary["rewritten_nodes"],
        summary["candidate_nodes"],
        None,
    )


# --- the cache as a whole ------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    size_bytes: int
    last_used: float  # seconds since the epoch
    model: str  # the original model's file name, "(bytes)" or "?" for an unreadable record
    rewritten_nodes: int | None


def cache_entries(cache_dir: str | os.PathLike | None = None) -> list[CacheEntry]:
    """The entries of ``cache_dir`` (default_cache_dir() by default), most recently used first."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not directory.is_dir():
        return []
    entries = []
    for path in directory.iterdir():
        if not path.is_dir() or path.name.startswith("."):
            continue  # staging directories of writers at work
        try:
            summary = json.loads((path / _RESULT_FILE).read_text())
            model, rewritten = summary.get("model", "?"), summary.get("rewritten_nodes")
            last_used = (path / _RESULT_FILE).stat().st_mtime
        except (OSError, ValueError, AttributeError):
            model, rewritten, last_used = "?", None, path.stat().st_mtime
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        entries.append(CacheEntry(path, size, last_used, model, rewritten))
    return sorted(entries, key=lambda entry: -entry.last_used)


def cache_limit_bytes() -> int:
    """$ORTSPARSE_CACHE_LIMIT_MB in bytes (DEFAULT_LIMIT_MB when unset); ValueError for a
    value that is not a non-negative number."""
    text = os.environ.get(LIMIT_ENV, "").strip()
    try:
        megabytes = float(text) if text else DEFAULT_LIMIT_MB
    except ValueError:
        raise ValueError(f"{LIMIT_ENV} must be a number of megabytes, got {text!r}") from None
    if megabytes < 0:
        raise ValueError(f"{LIMIT_ENV} must not be negative, got {text}")
    return int(megabytes * 1024 * 1024)


def evict(cache_dir: Path, keep: Path | None = None) -> list[CacheEntry]:
    """Deletes the least recently used entries (never ``keep``) until the cache fits the limit;
    returns those deleted."""
    limit = cache_limit_bytes()
    entries = cache_entries(cache_dir)
    total = sum(entry.size_bytes for entry in entries)
    deleted = []
    for entry in reversed(entries):  # least recently used first
        if total <= limit:
            break
        if keep is not None and entry.path == keep:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        total -= entry.size_bytes
        deleted.append(entry)
    return deleted


def clear_cache(cache_dir: str | os.PathLike | None = None) -> list[CacheEntry]:
    """Deletes every entry; returns them."""
    entries = cache_entries(cache_dir)
    for entry in entries:
        shutil.rmtree(entry.path, ignore_errors=True)
    return entries
