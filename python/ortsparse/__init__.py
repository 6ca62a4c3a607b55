"""ortsparse: sparsity-aware CPU kernels for stock ONNX Runtime.

Rewrite a pruned model once (``rewrite-model in.onnx out.onnx``), then load it in any ORT
application after registering the custom-op library::

    so = onnxruntime.SessionOptions()
    so.register_custom_ops_library(ortsparse.library_path())
    session = onnxruntime.InferenceSession("out.onnx", so)
"""

import os
from pathlib import Path

__version__ = "0.1.0"

#: ONNX op domain of every ortsparse operator.
OP_DOMAIN = "ortsparse"

_LIBRARY_NAME = "libortsparse_ops.so"


def library_path() -> str:
    """Path of the custom-op library to pass to ``SessionOptions.register_custom_ops_library``.

    The environment variable ``ORTSPARSE_LIBRARY`` overrides the copy installed with the package
    (useful with a library built by hand with CMake).
    """
    override = os.environ.get("ORTSPARSE_LIBRARY")
    path = Path(override) if override else Path(__file__).with_name(_LIBRARY_NAME)
    if not path.is_file():
        origin = "ORTSPARSE_LIBRARY" if override else "the installed package"
        raise FileNotFoundError(
            f"ortsparse custom-op library not found at {path} (from {origin}); "
            "build and install the package with `pip install .`"
        )
    return str(path)
