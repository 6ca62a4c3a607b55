"""Paired A/B timing: is one build of the library (or one rewrite of a model) faster than another?

Two ortsparse sessions, A and B, and ORT on the original model run in one process, timed in turn in
short slices (--slice seconds each; A, B and ORT in every round, A and B swapping places) so that
whatever drifts over a run (clock boost, another process, the page cache) falls on all three alike.
A round's figure for a pair is the ratio of their mean times per inference in that round; the report
gives each pair's median over the rounds and the quartiles around it. This is how the "paired"
figures in docs/performance.md are taken.

A and B differ in their library (--library-a / --library-b: e.g. a build of an earlier commit
against the current one) or in their model (--rewritten-a / --rewritten-b: two rewrites of
ORIGINAL), or both. A model not given is rewritten here from ORIGINAL with the installed
ortsparse, unverified (verification would itself choose nodes by timing); a library not given is
the installed one. ORTSPARSE_ISA picks the kernel family for both libraries.

    .venv/bin/python tools/bench_ab.py MODEL.onnx --library-a old/libortsparse_ops.so
    ORTSPARSE_ISA=avx2 .venv/bin/python tools/bench_ab.py MODEL.onnx \\
        --library-a old/libortsparse_ops.so --input-shape input=1,3,224,224 --rounds 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort
import ortsparse
from ortsparse.inputs import model_input_specs, random_inputs, resolve_input_shapes, to_feed
from ortsparse.rewriter import rewrite_model
from ortsparse.rewriter.command import INPUT_SHAPE_OPTION, positive_int


@dataclass
class Contender:
    name: str
    session: ort.InferenceSession
    times: list[float]  # mean seconds per inference, one per round


def make_session(model: Path, threads: int, library: str | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if library is not None:
        options.register_custom_ops_library(library)
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def mean_time(session: ort.InferenceSession, feed: dict, seconds: float) -> float:
    """Mean seconds per inference over runs filling `seconds` (at least one run)."""
    runs = 0
    start = time.perf_counter()
    while True:
        session.run(None, feed)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / runs


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4)
    return low, median, high


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("original", type=Path, metavar="ORIGINAL", help="the model ORT runs")
    parser.add_argument("--rewritten-a", type=Path, metavar="PATH", help="A's model")
    parser.add_argument("--rewritten-b", type=Path, metavar="PATH", help="B's model")
    parser.add_argument("--library-a", metavar="PATH", help="A's libortsparse_ops.so")
    parser.add_argument("--library-b", metavar="PATH", help="B's libortsparse_ops.so")
    parser.add_argument(
        "--input-shape",
        **INPUT_SHAPE_OPTION,
        help="an input's shape (repeatable); symbolic dims not given are 1",
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="intra-op threads (2)")
    parser.add_argument("--rounds", type=positive_int, default=30, help="rounds (default 30)")
    parser.add_argument(
        "--slice", type=float, default=0.25, help="seconds per contender per round (0.25)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.slice <= 0:
        print("bench_ab: --slice must be positive", file=sys.stderr)
        return 2
    default_library = ortsparse.library_path()
    specs = model_input_specs(onnx.load(str(args.original), load_external_data=False))
    given_shapes = dict(args.input_shape)
    unknown = sorted(set(given_shapes) - {spec.name for spec in specs})
    if unknown:
        print(f"bench_ab: the model has no input named {', '.join(unknown)}", file=sys.stderr)
        return 2
    shapes = {**resolve_input_shapes(specs).shapes, **given_shapes}
    with tempfile.TemporaryDirectory() as scratch:
        models = {}
        for side in ("a", "b"):
            given = getattr(args, f"rewritten_{side}")
            if given is None:
                given = Path(scratch) / f"rewritten_{side}.onnx"
                if side == "b" and args.rewritten_a is None:
                    given = models["a"]
                else:
                    print(
                        f"bench_ab: rewriting {args.original} for {side.upper()}", file=sys.stderr
                    )
                    result = rewrite_model(onnx.load(str(args.original)), input_shapes=shapes)
                    onnx.save(result.model, str(given))
            models[side] = given
        contenders = [
            Contender(
                side.upper(),
                make_session(
                    models[side], args.threads, getattr(args, f"library_{side}") or default_library
                ),
                [],
            )
            for side in ("a", "b")
        ]
        contenders.append(Contender("ORT", make_session(args.original, args.threads, None), []))

    arrays = random_inputs(specs, shapes)
    feed = {spec.name: to_feed(spec, array) for spec, array in zip(specs, arrays)}
    for contender in contenders:
        contender.session.run(None, feed)  # first runs build ORT's and ortsparse's plans
    print(
        f"bench_ab: {args.rounds} rounds of {args.slice:g} s per contender, "
        f"{args.threads} threads, "
        f"inputs {', '.join(f'{name}={list(shape)}' for name, shape in shapes.items())}",
        file=sys.stderr,
    )
    for round_index in range(args.rounds):
        # A and B swap places every round, so that neither always runs right after ORT.
        order = (
            contenders if round_index % 2 == 0 else [contenders[1], contenders[0], contenders[2]]
        )
        for contender in order:
            contender.times.append(mean_time(contender.session, feed, args.slice))
        if (round_index + 1) % 10 == 0 or round_index + 1 == args.rounds:
            print(f"bench_ab: round {round_index + 1}/{args.rounds}", file=sys.stderr)

    a, b, reference = contenders
    for name, contender in (("A", a), ("B", b), ("ORT", reference)):
        print(f"{name:>4}: median {statistics.median(contender.times) * 1e3:.3f} ms per inference")
    for numerator, denominator in ((a, b), (reference, a), (reference, b)):
        ratios = [n / d for n, d in zip(numerator.times, denominator.times)]
        low, median, high = quartiles(ratios)
        print(
            f"{numerator.name}/{denominator.name} time: median {median:.4f} "
            f"(quartiles {low:.4f}-{high:.4f})"
            + ("  (> 1: B faster)" if numerator is a else f"  (speedup of {denominator.name})")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
