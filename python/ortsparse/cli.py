"""The `ortsparse` command line, and `rewrite-model`."""

from __future__ import annotations

import argparse
import json
import sys


def _run_isa(args: argparse.Namespace) -> int:
    from ortsparse.isa import cpu_report, format_cpu_report

    try:
        report = cpu_report()
    except ValueError as error:
        print(f"ortsparse isa: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_cpu_report(report))
    return 0


def _run_rewrite(args: argparse.Namespace) -> int:
    from ortsparse.rewriter.command import run_rewrite

    return run_rewrite(args)


def _add_rewrite_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.rewriter.command import add_rewrite_arguments

    add_rewrite_arguments(parser)


def _run_calibrate(args: argparse.Namespace) -> int:
    from ortsparse.calibration import run_calibrate

    return run_calibrate(args)


def _add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.calibration import add_calibrate_arguments

    add_calibrate_arguments(parser)


def _run_benchmark(args: argparse.Namespace) -> int:
    from ortsparse.benchmark_command import run_benchmark

    return run_benchmark(args)


def _add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.benchmark_command import add_benchmark_arguments

    add_benchmark_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ortsparse",
        description="Sparsity-aware CPU kernels for ONNX Runtime.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    isa = commands.add_parser(
        "isa",
        help="show the CPU's ISA extensions and the kernel family ortsparse will use",
        description="Show the CPU's ISA extensions, cache sizes and the kernel family the "
        "provider will pick (the ORTSPARSE_ISA environment variable can lower it).",
    )
    isa.add_argument("--json", action="store_true", help="print JSON instead of a table")
    isa.set_defaults(run=_run_isa)

    rewrite = commands.add_parser(
        "rewrite",
        help="replace eligible nodes of a sparse ONNX model with ortsparse ops",
        description="Replace eligible nodes of a sparse ONNX model with ortsparse ops "
        "(same as the rewrite-model command).",
    )
    _add_rewrite_arguments(rewrite)
    rewrite.set_defaults(run=_run_rewrite)

    calibrate = commands.add_parser(
        "calibrate",
        help="measure this CPU's cost model (ORT's dense ops against ortsparse's), which the "
        "rewriter then uses here",
        description="Time ORT's dense MatMul and Conv against ortsparse's SparseGemm and "
        "SparseConv on one thread, at the shapes and densities the cost model is fitted on "
        "(about 40 s), and store the fit for this CPU and kernel family under the cache "
        "directory. Until a CPU is calibrated (or its model measured by ortsparse's developers), "
        "the rewriter predicts conservatively from other CPUs' data.",
    )
    _add_calibrate_arguments(calibrate)
    calibrate.set_defaults(run=_run_calibrate)

    benchmark = commands.add_parser(
        "benchmark",
        help="time a model with ONNX Runtime or ortsparse (DeepSparse's benchmark flags), or "
        "compare the two",
        description="Time MODEL on random inputs: throughput and latency per batch, as "
        "deepsparse.benchmark prints them. -e ortsparse (default) rewrites the model first "
        "(cached); -e onnxruntime runs it as it is; --compare runs both.",
        # DeepSparse's single-dash long flags (-shapes, -ncores) must not be read as prefixes.
        allow_abbrev=False,
    )
    _add_benchmark_arguments(benchmark)
    benchmark.set_defaults(run=_run_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


def rewrite_model_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rewrite-model",
        description="Replace eligible nodes of a sparse ONNX model with ortsparse ops.",
    )
    _add_rewrite_arguments(parser)
    return _run_rewrite(parser.parse_args(argv))
