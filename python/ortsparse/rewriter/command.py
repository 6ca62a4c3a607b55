"""Command-line glue for `rewrite-model IN OUT` and `ortsparse rewrite IN OUT`."""

from __future__ import annotations

import argparse
import sys

from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.model_io import rewrite_file

EXIT_BAD_INPUT = 2
EXIT_CANNOT_WRITE = 1


def add_rewrite_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="the sparse ONNX model to rewrite")
    parser.add_argument("output", metavar="OUT", help="where to write the rewritten model")
    parser.add_argument(
        "--report",
        action="store_true",
        help="print, for every MatMul/Gemm/Conv, its shape, sparsity, format, and whether it was "
        "rewritten and why",
    )
    parser.add_argument(
        "--min-sparsity",
        type=fraction,
        metavar="FLOAT",
        help="rewrite every weight with at least this fraction of zeros (0..1), instead of letting "
        "the measured cost model decide",
    )


def run_rewrite(args: argparse.Namespace) -> int:
    try:
        result = rewrite_file(
            args.input,
            args.output,
            min_sparsity=args.min_sparsity,
            report=args.report,
            progress=_progress,
        )
    except RewriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"error: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return EXIT_CANNOT_WRITE
    _progress(
        f"wrote {args.output}: {result.rewritten_count} of {len(result.decisions)} "
        "MatMul/Gemm/Conv node(s) rewritten"
    )
    return 0


def fraction(text: str) -> float:
    """argparse type: a number within [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {value}")
    return value


def _progress(message: str) -> None:
    print(f"[rewrite] {message}", file=sys.stderr, flush=True)
