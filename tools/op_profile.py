#!/usr/bin/env python3
"""Where a model's time goes, by op type, in ONNX Runtime's own profiler: the model on ORT and its
ortsparse rewrite (as ortsparse.InferenceSession makes it: verified on this CPU unless
--no-verify) side by side, on --threads intra-op threads.

Each engine runs the model --runs times after a few warm-up runs with profiling on; the table
gives each op type's kernel time per run, summed over its nodes, and the wall time per run
measured without the profiler. What the wall time holds beyond the kernels' sum is ORT's own
work between nodes (allocation, thread-pool hand-offs, the profiler's bookkeeping aside).

    .venv/bin/python tools/op_profile.py ~/.cache/ortsparse/zoo/ocr_cls_s0.8_b1.onnx \\
        --input-shape x=1,3,48,192 --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import ortsparse  # noqa: E402
from ortsparse.inputs import model_input_specs, random_inputs, to_feed  # noqa: E402
from ortsparse.rewriter.command import INPUT_SHAPE_OPTION  # noqa: E402
from ortsparse.verification import default_input_shapes  # noqa: E402

WARMUP_RUNS = 5


def profile(session_for, feeds: dict, runs: int) -> tuple[Counter, float]:
    """(kernel milliseconds per run by op type, wall milliseconds per run) of the session that
    ``session_for(options)`` makes."""
    with tempfile.TemporaryDirectory() as directory:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(directory) / "profile")
        session = session_for(options)
        for _ in range(WARMUP_RUNS):
            session.run(None, feeds)
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"] / 1e3 / (runs + WARMUP_RUNS)
    plain = session_for(ort.SessionOptions())
    for _ in range(WARMUP_RUNS):
        plain.run(None, feeds)
    start = time.perf_counter()
    for _ in range(runs):
        plain.run(None, feeds)
    return by_op, (time.perf_counter() - start) / runs * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="the ONNX model (original, not rewritten)")
    parser.add_argument(
        "--input-shape",
        **INPUT_SHAPE_OPTION,
        help="the size of an input with symbolic dims (default: batch 1, 64 for others)",
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    parser.add_argument("--runs", type=int, default=200, help="profiled runs (default 200)")
    parser.add_argument("--no-verify", action="store_true", help="take the rewrite unverified")
    args = parser.parse_args(argv)

    specs = model_input_specs(onnx.load(str(args.model), load_external_data=False))
    shapes = {**default_input_shapes(specs), **dict(args.input_shape)}
    arrays = random_inputs(specs, shapes)
    feeds = {spec.name: to_feed(spec, array) for spec, array in zip(specs, arrays)}

    def ort_session(options):
        options.intra_op_num_threads = args.threads
        return ort.InferenceSession(str(args.model), options, providers=["CPUExecutionProvider"])

    def ortsparse_session(options):
        options.intra_op_num_threads = args.threads
        # Registered here, the session is made once: a first try without the library would leave
        # ORT a profiling session with no model, of which it complains.
        options.register_custom_ops_library(ortsparse.library_path())
        return ortsparse.InferenceSession(
            str(args.model),
            options,
            providers=["CPUExecutionProvider"],
            verify=not args.no_verify,
            input_shapes=shapes,
        )

    original, original_wall = profile(ort_session, feeds, args.runs)
    rewrite, rewrite_wall = profile(ortsparse_session, feeds, args.runs)
    ops = sorted(set(original) | set(rewrite), key=lambda op: -max(original[op], rewrite[op]))
    print(f"{args.model.name}, {args.threads} thread(s), ms per run")
    print(f"{'op type':<28}{'ORT':>10}{'ortsparse':>12}")
    for op in ops:
        print(f"{op:<28}{original[op]:>10.3f}{rewrite[op]:>12.3f}")
    print(f"{'kernels in all':<28}{sum(original.values()):>10.3f}{sum(rewrite.values()):>12.3f}")
    print(f"{'wall time (no profiler)':<28}{original_wall:>10.3f}{rewrite_wall:>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
