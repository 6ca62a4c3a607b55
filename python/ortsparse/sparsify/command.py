"""`ortsparse sparsify`: a dense ONNX model in, a sparse one out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

from ortsparse.rewriter.command import positive_int
from ortsparse.sparsify.calibration_inputs import (
    IMAGE_PREPARATIONS,
    CalibrationError,
    CalibrationInputs,
)
from ortsparse.sparsify.layers import DEFAULT_MIN_WEIGHTS
from ortsparse.sparsify.model import (
    SparsifyError,
    analyze,
    choose_layers,
    sparsify_model,
    top1_accuracy,
)
from ortsparse.sparsify.patterns import parse_pattern
from ortsparse.sparsify.quantization import Quantization
from ortsparse.sparsify.recipe import (
    DISTRIBUTIONS,
    METHODS,
    Recipe,
    RecipeError,
    compile_expression,
    load_recipe,
)
from ortsparse.sparsify.sensitivity import distribute, plot

DEFAULT_SAMPLES = 128


def _pattern(text: str):
    try:
        return parse_pattern(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def add_sparsify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the dense ONNX model")
    parser.add_argument(
        "output", type=Path, nargs="?", help="where to write the sparse model (not with --analyze)"
    )
    parser.add_argument(
        "--sparsity",
        type=_fraction,
        help="fraction of each layer's weights to zero (default 0.8; an N:M pattern has its own)",
    )
    parser.add_argument(
        "--pattern",
        type=_pattern,
        metavar="PATTERN",
        help="unstructured (default; csr kernels), 4x1 (4 output channels at one input feature: "
        "block4 kernels), 1x4 (4 input features of one output channel, for a Conv 4 channels at "
        "one tap: the INT8 kernels' quads), any RxC of 1, 2, 4, 8, 16 (e.g. 4x16, 2x1) or N:M "
        "such as 2:4 (N kept of every M input features)",
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        help="obs (default): choose the weights to drop and update the rest to keep each layer's "
        "output on the calibration inputs (one-shot Optimal Brain Surgeon, as SparseGPT); "
        "magnitude: drop the smallest, no calibration needed",
    )
    parser.add_argument(
        "--distribution",
        choices=DISTRIBUTIONS,
        help="uniform (default): every layer at --sparsity; sensitivity: each layer as far as its "
        "measured output error allows, --sparsity on average over the layers' weights (needs "
        "--calibration)",
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="write no model: measure each layer's output error as its sparsity rises (alone, "
        "against the dense model's inputs), print the curves and the sensitivity distribution's "
        "per-layer targets for --sparsity",
    )
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="with --analyze: draw the curves into PNG"
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="quantize the pruned model to INT8 with ONNX Runtime's static quantizer, calibrated "
        "on the calibration inputs (QDQ, int8 weights per output channel, uint8 activations; a "
        "recipe's quantization section sets these)",
    )
    parser.add_argument(
        "--recipe",
        type=Path,
        metavar="YAML",
        help="per-layer sparsity and pattern, layers left dense and the method, in a YAML file "
        "(docs/usage.md); instead of --sparsity, --pattern, --method, --dense, --prune-ends and "
        "--quantize",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        metavar="PATH",
        help="an .npz of arrays keyed by input name (samples first; an array `labels` of class "
        "indices adds accuracy to --analyze), or a folder of images",
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=DEFAULT_SAMPLES,
        help=f"calibration samples to use at most (default {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--images-as",
        choices=IMAGE_PREPARATIONS,
        default="image_classification",
        help="how a folder's images become inputs: as this pipeline prepares them (default "
        "image_classification: ImageNet's resize, crop and normalisation; yolo: letterbox, 0-1)",
    )
    parser.add_argument(
        "--dense",
        action="append",
        default=[],
        metavar="REGEX",
        help="leave layers whose node or weight name matches REGEX dense (repeatable)",
    )
    parser.add_argument(
        "--prune-ends",
        action="store_true",
        help="prune the first and the last layer too (left dense by default: a stem conv and a "
        "classifier head lose the most accuracy for the least time)",
    )
    parser.add_argument(
        "--min-weights",
        type=positive_int,
        default=DEFAULT_MIN_WEIGHTS,
        help=f"leave weights of fewer entries dense (default {DEFAULT_MIN_WEIGHTS})",
    )


def run_sparsify(args: argparse.Namespace) -> int:
    def say(message: str) -> None:
        print(f"[sparsify] {message}", file=sys.stderr, flush=True)

    try:
        model = onnx.load(str(args.model))
    except OSError as error:
        say(f"error: cannot read {args.model}: {error.strerror or error}")
        return 2
    except Exception as error:  # protobuf's DecodeError: not an ONNX model
        say(f"error: {args.model} is not an ONNX model ({type(error).__name__}: {error})")
        return 2
    try:
        recipe = _recipe(args)
    except RecipeError as error:
        say(f"error: {error}")
        return 2
    if args.analyze == (args.output is not None):
        say("error: give OUTPUT, the sparse model to write, or --analyze, not both")
        return 2
    if args.plot is not None and not args.analyze:
        say("error: --plot draws the curves of --analyze")
        return 2
    try:
        calibration = None
        if args.calibration is not None:
            calibration = CalibrationInputs(
                args.calibration, args.model, args.samples, args.images_as
            )
            say(f"calibration: {len(calibration)} batch(es) from {args.calibration}")
        if args.analyze:
            return _analyze(args, model, recipe, calibration, say)
        result = sparsify_model(
            model, recipe, calibration=calibration, min_weights=args.min_weights, progress=say
        )
    except (SparsifyError, CalibrationError) as error:
        say(f"error: {error}")
        return 2
    onnx.checker.check_model(result.model)
    try:
        onnx.save(result.model, str(args.output))
    except OSError as error:
        say(f"error: cannot write {args.output}: {error.strerror or error}")
        return 2
    for line in result.left_dense:
        say(f"dense: {line}")
    print(f"{'layer':40s} {'op':6s} {'pattern':12s} {'zeros':>7s} {'output error':>13s}")
    for layer in result.layers:
        error = "-" if layer.relative_error is None else f"{layer.relative_error:.4f}"
        print(
            f"{layer.name[:40]:40s} {layer.op_type:6s} {layer.pattern:12s} {layer.sparsity:7.1%} "
            f"{error:>13s}"
        )
    print(
        f"wrote {args.output}: {len(result.layers)} layer(s) pruned by {recipe.method}; output "
        "error: the layer's on the calibration inputs, as a fraction of what zeroing its weight "
        "would cause"
    )
    return 0


def _recipe(args: argparse.Namespace) -> Recipe:
    """The recipe file's, or one made of the options (their defaults where not given)."""
    options = {
        "--sparsity": args.sparsity,
        "--pattern": args.pattern,
        "--method": args.method,
        "--dense": args.dense or None,
        "--prune-ends": args.prune_ends or None,
        "--quantize": args.quantize,
        "--distribution": args.distribution,
    }
    if args.recipe is not None:
        given = [flag for flag, value in options.items() if value is not None]
        if given:
            raise RecipeError(f"with --recipe, give {', '.join(given)} in the recipe instead")
        return load_recipe(args.recipe)
    defaults = Recipe()
    return Recipe(
        sparsity=defaults.sparsity if args.sparsity is None else args.sparsity,
        pattern=args.pattern or defaults.pattern,
        method=args.method or defaults.method,
        prune_ends=args.prune_ends,
        dense=tuple(compile_expression(text, "--dense") for text in args.dense),
        quantization=Quantization() if args.quantize else None,
        distribution=args.distribution or defaults.distribution,
    )


def _analyze(args, model, recipe: Recipe, calibration, say) -> int:
    if calibration is None:
        raise SparsifyError("--analyze measures errors on calibration inputs: give --calibration")
    chosen, left_dense = choose_layers(model, recipe, args.min_weights)
    curves = analyze(model, recipe, calibration, [layer for layer, _ in chosen], say)
    targets = distribute(curves, recipe.sparsity)
    for line in left_dense:
        say(f"dense: {line}")
    sparsities = sorted({s for curve in curves for s in curve.sparsities})
    header = " ".join(f"{s:>7.0%}" for s in sparsities)
    print(f"{'layer':40s} {header}  sensitivity target at {recipe.sparsity:.0%}")
    for curve in curves:
        errors = dict(zip(curve.sparsities, curve.errors))
        cells = " ".join(f"{errors[s]:7.4f}" if s in errors else f"{'-':>7s}" for s in sparsities)
        print(f"{curve.layer[:40]:40s} {cells}  {targets[curve.layer]:.1%}")
    print(
        f"output error of each layer pruned alone ({recipe.method}), as a fraction of what "
        "zeroing its weight would cause"
    )
    if calibration.labels is not None:
        print(
            f"\ntop-1 accuracy on the labelled calibration samples, dense: {top1_accuracy(model, calibration):.1%}"
        )
        print(f"{'layer':40s} {header}")
        for curve in curves:
            accuracies = dict(zip(curve.sparsities, curve.accuracies))
            cells = " ".join(
                f"{accuracies[s]:7.1%}" if s in accuracies else f"{'-':>7s}" for s in sparsities
            )
            print(f"{curve.layer[:40]:40s} {cells}")
    if args.plot is not None:
        plot(curves, args.plot)
        say(f"wrote {args.plot}")
    return 0
