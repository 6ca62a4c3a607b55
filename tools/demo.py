#!/usr/bin/env python3
"""The main job, end to end: build a 90%-sparse model, rewrite it with ortsparse (printing the
rewrite report), check that its outputs equal ONNX Runtime's on the original, and show the speedup.

    python tools/demo.py              # MLP 4 x 1024x1024, batch 1 and 64 (well under a minute)
    python tools/demo.py --bert       # also a BERT-base-like encoder, seq 128, batch 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# Run as a file, Python puts only tools/ on sys.path; the helpers import as tools.*.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ortsparse.rewriter import rewrite_file  # noqa: E402

from tools.bench_gemm import (  # noqa: E402
    Result,
    RewrittenModel,
    Timing,
    Workload,
    benchmark_workload,
    format_table,
    original_model_path,
)
from tools.model_builders import BertConfig, MlpConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bert", action="store_true", help="also run a 12-layer BERT-base-like encoder"
    )
    parser.add_argument("--sparsity", type=float, default=0.9, help="weight sparsity (default 0.9)")
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads for both (default 2)"
    )
    parser.add_argument(
        "--time", type=float, default=2.0, help="seconds per measurement (default 2)"
    )
    parser.add_argument(
        "--min-sparsity",
        type=float,
        help="rewrite every MatMul/Gemm at least this sparse (default: the rewriter's cost model)",
    )
    parser.add_argument(
        "--model-dir", type=Path, help="keep the models here (default: a temporary directory)"
    )
    return parser.parse_args(argv)


def demo_workloads(args: argparse.Namespace) -> list[list[Workload]]:
    """Workloads grouped by the model file they share."""
    mlp = [Workload("mlp", batch, None, args.sparsity, 1, MlpConfig.layers) for batch in (1, 64)]
    bert = [Workload("bert", 1, 128, args.sparsity, 1, BertConfig.layers)]
    return [mlp, bert] if args.bert else [mlp]


def rewrite_with_report(original: Path, min_sparsity: float | None) -> RewrittenModel:
    path = original.with_name(original.stem + ".ortsparse.onnx")
    print(f"\n== rewriting {original.name} -> {path.name}")
    result = rewrite_file(original, path, min_sparsity=min_sparsity, report=True)
    return RewrittenModel(path, result.rewritten_count, len(result.decisions))


def print_check(result: Result) -> None:
    verdict = "equal" if result.outputs_match else "DIFFERENT"
    print(
        f"outputs {verdict}: {result.workload}: max |ortsparse - ORT| = "
        f"{result.max_rel_error:.2g} x max |ORT output|"
    )


def print_speedups(results: list[Result]) -> None:
    print()
    for r in results:
        print(f"ortsparse is {r.ratio:.2f}x ORT's throughput on {r.workload}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timing = Timing(threads=args.threads, seconds=args.time, warmup=3, seed=0)
    results = []
    with tempfile.TemporaryDirectory(prefix="ortsparse-demo-") as scratch:
        model_dir = args.model_dir or Path(scratch)
        model_dir.mkdir(parents=True, exist_ok=True)
        for workloads in demo_workloads(args):
            original = original_model_path(workloads[0], model_dir, seed=0)
            rewritten = rewrite_with_report(original, args.min_sparsity)
            print(
                f"\n== checking outputs and timing ({args.threads} threads, {args.time:g} s each)"
            )
            for workload in workloads:
                results.append(benchmark_workload(workload, original, rewritten, timing))
                print_check(results[-1])
    print(
        f"\n== ONNX Runtime (original model) vs ortsparse (rewritten model), {args.threads} threads"
    )
    print(format_table(results))
    print_speedups(results)
    return 0 if all(r.outputs_match for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
