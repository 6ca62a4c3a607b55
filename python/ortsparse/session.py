"""ortsparse.InferenceSession: onnxruntime.InferenceSession on the model's ortsparse rewrite.

import ortsparse as ort         # was: import onnxruntime as ort
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import onnxruntime

import ortsparse
from ortsparse.rewrite_cache import PreparedModel, prepare_model

# SessionOptions known to hold the ortsparse library. ORT cannot copy a SessionOptions, nor say
# which libraries it holds, and registering a library twice on one fails.
_OPTIONS_WITH_LIBRARY: weakref.WeakSet = weakref.WeakSet()


class InferenceSession(onnxruntime.InferenceSession):
    """onnxruntime.InferenceSession, with the model rewritten by ortsparse first.

    Takes what onnxruntime.InferenceSession takes, passed on unchanged, plus ``cache_dir`` (where
    rewritten models are kept; rewrite_cache.py), ``min_sparsity`` (as in rewrite_model),
    ``verify`` and ``input_shapes``. The rewrite happens once per model content and is then
    loaded from the cache; a model the rewriter cannot improve, or cannot read, is loaded as it
    is. With ``verify`` (the default) the rewrite is first timed against the original on this CPU,
    on the intra-op threads of ``sess_options`` and inputs of ``input_shapes`` (by input name;
    verification.py), and ORT's nodes are kept wherever ortsparse is not faster; progress lines
    go to standard error meanwhile.

    When the rewritten model has ortsparse ops, the ortsparse library is registered on
    ``sess_options``, which is changed in place (ORT's SessionOptions cannot be copied), unless it
    already holds it. ``ortsparse_model`` says what was loaded and what the rewriter did.
    """

    def __init__(
        self,
        path_or_bytes: str | bytes | os.PathLike,
        sess_options: onnxruntime.SessionOptions | None = None,
        providers: Sequence[str | tuple[str, dict[Any, Any]]] | None = None,
        provider_options: Sequence[dict[Any, Any]] | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        min_sparsity: float | None = None,
        verify: bool = True,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.ortsparse_model: PreparedModel = prepare_model(
            path_or_bytes,
            cache_dir=cache_dir,
            min_sparsity=min_sparsity,
            verify=verify,
            threads=sess_options.intra_op_num_threads if sess_options is not None else 0,
            input_shapes=input_shapes,
            progress=_progress,
        )
        source = self.ortsparse_model.source

        def create(options: onnxruntime.SessionOptions | None) -> None:
            super(InferenceSession, self).__init__(
                source, options, providers, provider_options, **kwargs
            )

        if not self.ortsparse_model.has_ortsparse_ops:
            create(sess_options)
            return
        if sess_options is None:
            sess_options = onnxruntime.SessionOptions()
        elif sess_options not in _OPTIONS_WITH_LIBRARY:
            # The caller may have registered the library already, as code written for plain
            # ONNX Runtime and a rewritten model does; a session without it fails on an
            # ortsparse op.
            try:
                create(sess_options)
                _OPTIONS_WITH_LIBRARY.add(sess_options)
                return
            except Exception as error:  # ORT's exception classes share no narrower base
                if ortsparse.OP_DOMAIN not in str(error):
                    raise
        if sess_options not in _OPTIONS_WITH_LIBRARY:
            sess_options.register_custom_ops_library(ortsparse.library_path())
            _OPTIONS_WITH_LIBRARY.add(sess_options)
        create(sess_options)


def _progress(message: str) -> None:
    print(f"[ortsparse] {message}", file=sys.stderr, flush=True)
