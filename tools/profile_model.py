#!/usr/bin/env python3
"""Runs a model's ortsparse rewrite in a loop, for a profiler to watch where its time goes.

The model is rewritten as rewrite-model would without verification (the cost model alone
decides), then run on random inputs on --threads intra-op threads for --seconds, after a few
warm-up runs; the time per run goes to standard output. Under Linux perf, with the library built
with its symbols (the build tree's copy, not the installed one, which is stripped):

    ORTSPARSE_LIBRARY=build/cp311-cp311-linux_x86_64/libortsparse_ops.so \\
        perf record -F 2000 -o /tmp/perf.data .venv/bin/python tools/profile_model.py MODEL
    perf report -i /tmp/perf.data --no-children --sort dso,symbol

ORTSPARSE_ISA picks the kernel family to profile, as everywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import ortsparse  # noqa: E402
from ortsparse.inputs import model_input_specs, random_inputs  # noqa: E402
from ortsparse.rewriter import rewrite_model  # noqa: E402
from ortsparse.verification import default_input_shapes  # noqa: E402

WARMUP_RUNS = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="the ONNX model (original, not rewritten)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--batch", type=int, default=1, help="size of a symbolic batch (default 1)")
    args = parser.parse_args(argv)

    original = onnx.load(str(args.model))
    rewritten = rewrite_model(original).model
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.register_custom_ops_library(ortsparse.library_path())
    session = ort.InferenceSession(
        rewritten.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    specs = model_input_specs(original)
    feeds = dict(
        zip(
            (spec.name for spec in specs),
            random_inputs(specs, default_input_shapes(specs, args.batch)),
        )
    )
    for _ in range(WARMUP_RUNS):
        session.run(None, feeds)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        session.run(None, feeds)
        runs += 1
    print(f"{(time.perf_counter() - start) / runs * 1e3:.2f} ms per run ({runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
