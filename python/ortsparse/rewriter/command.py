"""Command-line glue for `rewrite-model IN OUT` and `ortsparse rewrite IN OUT`."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from ortsparse.rewriter.cost_data import cost_models_of
from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.model_io import rewrite_file
from ortsparse.verification import DEFAULT_SECONDS, SYMBOLIC_DIM, verify_rewrite

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
    parser.add_argument(
        "--cost-data",
        type=Path,
        metavar="FILE",
        help="decide with the cost model measured on another CPU (`ortsparse calibrate --output "
        "FILE` there), for a model meant for that CPU; implies --no-verify, which would time this "
        "one",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="do not time the rewrite against the original on this CPU (e.g. when OUT is for "
        "another machine); by default every ortsparse node, then the whole model, is timed and "
        "ORT's nodes are put back wherever ortsparse is not faster",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        default=0,
        help="intra-op threads to verify with (default: ORT's default, every core)",
    )
    parser.add_argument(
        "--input-shape",
        **INPUT_SHAPE_OPTION,
        help="the shape input NAME will run at (repeatable): the cost model judges at its sizes "
        "where the model's dims are symbolic, and verification times it; otherwise a symbolic "
        f"batch dim is 1 and every other symbolic dim {SYMBOLIC_DIM} for verification, and the "
        "cost model takes a representative size",
    )
    parser.add_argument(
        "--verify-seconds",
        type=positive_float,
        metavar="S",
        default=DEFAULT_SECONDS,
        help=f"time allowed for verification (default {DEFAULT_SECONDS:.0f})",
    )


def run_rewrite(args: argparse.Namespace) -> int:
    models = None
    if args.cost_data is not None:
        try:
            models = cost_models_of(args.cost_data)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    verify = None
    if not args.no_verify and models is None:
        verify = functools.partial(
            verify_rewrite,
            threads=args.threads,
            input_shapes=dict(args.input_shape),
            seconds=args.verify_seconds,
            progress=_progress,
        )
    try:
        result = rewrite_file(
            args.input,
            args.output,
            min_sparsity=args.min_sparsity,
            report=args.report,
            progress=_progress,
            verify=verify,
            cost_models=models,
            input_shapes=dict(args.input_shape),
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


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """argparse type: ``NAME=1,3,224,224`` -> ("NAME", (1, 3, 224, 224))."""
    name, separator, dims = text.rpartition("=")
    try:
        shape = tuple(int(dim) for dim in dims.split(",")) if dims.strip() else ()
    except ValueError:
        shape = None
    if not separator or not name or shape is None or any(dim < 1 for dim in shape):
        raise argparse.ArgumentTypeError(
            f"expected NAME=D0,D1,... with sizes of at least 1, e.g. input=1,3,224,224; "
            f"got {text!r}"
        )
    return name, shape


#: How every command takes input sizes: --input-shape NAME=D0,D1,..., repeatable.
INPUT_SHAPE_OPTION = {
    "action": "append",
    "type": input_shape,
    "metavar": "NAME=D0,D1,...",
    "default": [],
}


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
