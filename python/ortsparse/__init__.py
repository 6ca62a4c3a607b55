"""ortsparse: sparsity-aware CPU kernels for stock ONNX Runtime.

Load a pruned model through ortsparse, which rewrites it on load (cached on disk)::

    session = ortsparse.InferenceSession("model.onnx")        # an onnxruntime.InferenceSession
    engine = ortsparse.compile_model("model.onnx", batch_size=1)   # DeepSparse's engine API

Every other public name of onnxruntime (SessionOptions, GraphOptimizationLevel, ...) is reachable
here too, so that ``import ortsparse as ort`` can replace ``import onnxruntime as ort``.

or rewrite it once (``rewrite-model in.onnx out.onnx``) and load the rewrite in any ORT
application after registering the custom-op library::

    so = onnxruntime.SessionOptions()
    so.register_custom_ops_library(ortsparse.library_path())
    session = onnxruntime.InferenceSession("out.onnx", so)
"""

import importlib
import os
import re
from pathlib import Path

__version__ = "0.1.0"

#: ONNX op domain of every ortsparse operator.
OP_DOMAIN = "ortsparse"

_LIBRARY_NAME = "libortsparse_ops.so"

#: The oldest onnxruntime whose C API (version 21) the library is built against.
MIN_ONNXRUNTIME = (1, 21)


def library_path() -> str:
    """Path of the custom-op library to pass to ``SessionOptions.register_custom_ops_library``.

    The environment variable ``ORTSPARSE_LIBRARY`` overrides the copy installed with the package
    (useful with a library built by hand with CMake).
    """
    _check_onnxruntime_version()
    override = os.environ.get("ORTSPARSE_LIBRARY")
    path = Path(override) if override else Path(__file__).with_name(_LIBRARY_NAME)
    if not path.is_file():
        origin = "ORTSPARSE_LIBRARY" if override else "the installed package"
        raise FileNotFoundError(
            f"ortsparse custom-op library not found at {path} (from {origin}); "
            "build and install the package with `pip install .`"
        )
    return str(path)


def _check_onnxruntime_version() -> None:
    """Raises RuntimeError where the onnxruntime this process imports is older than
    MIN_ONNXRUNTIME: its API cannot register the library's ops, and sessions would fail later on
    ops they do not know."""
    version = importlib.import_module("onnxruntime").__version__
    match = re.match(r"(\d+)\.(\d+)", version)
    if match and (int(match[1]), int(match[2])) < MIN_ONNXRUNTIME:
        needed = ".".join(map(str, MIN_ONNXRUNTIME))
        raise RuntimeError(
            f"ortsparse needs onnxruntime {needed} or newer, found {version}: "
            f"pip install -U 'onnxruntime>={needed}'"
        )


# Imported on first use, so that `import ortsparse` (and `ortsparse isa`) need not load ONNX Runtime.
_LAZY_ATTRIBUTES = {
    "InferenceSession": "ortsparse.session",
    "compile_model": "ortsparse.engine",
    "Engine": "ortsparse.engine",
    "BenchmarkResults": "ortsparse.benchmark",
    "Pipeline": "ortsparse.pipelines",
}

__all__ = [
    "OP_DOMAIN",
    "BenchmarkResults",
    "Engine",
    "InferenceSession",
    "Pipeline",
    "compile_model",
    "library_path",
]


def __getattr__(name: str):
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    if not name.startswith("_"):
        onnxruntime = importlib.import_module("onnxruntime")
        if hasattr(onnxruntime, name):
            return getattr(onnxruntime, name)
    raise AttributeError(f"module 'ortsparse' has no attribute {name!r}")
