"""`ortsparse benchmark MODEL`: DeepSparse's benchmark command, for ONNX Runtime and ortsparse.

Results go to stdout, everything else (what is being done, progress, errors) to stderr. Exit
status: 0, 2 for bad input (arguments, a missing or invalid model, shapes that do not fit it),
1 when ONNX Runtime fails or the export cannot be written. The JSON export is described in
docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state

import ortsparse
from ortsparse import isa
from ortsparse.benchmark import (
    BenchmarkResults,
    Progress,
    available_cores,
    format_results,
    measure,
    session_runner,
    split_cores,
)
from ortsparse.inputs import (
    InputError,
    InputSpec,
    input_specs,
    model_input_specs,
    parse_input_shapes,
    random_inputs,
    resolve_input_shapes,
    unsized_dims,
)
from ortsparse.pipeline_benchmark import run_pipeline_benchmark
from ortsparse.pipelines import Pipeline
from ortsparse.rewrite_cache import PreparedModel, prepare_model, unchanged_model
from ortsparse.rewriter.command import EXIT_BAD_INPUT, EXIT_CANNOT_WRITE, fraction
from ortsparse.rewriter.errors import RewriteError
from ortsparse.rewriter.model_io import check_model_file

EXIT_RUNTIME_FAILURE = 1
ORTSPARSE, ONNXRUNTIME = "ortsparse", "onnxruntime"

# What ONNX Runtime raises: its own classes (Fail, InvalidGraph, ...), which share no base but
# Exception, and RuntimeError.
_ORT_ERRORS = (
    RuntimeError,
    *(
        value
        for value in vars(onnxruntime_pybind11_state).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ),
)


class _BadArguments(Exception):
    """Arguments that parse but do not go together."""


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="the ONNX model to benchmark")
    parser.add_argument(
        "-b",
        "--batch_size",
        type=_positive(int),
        help="items per run: the size of every symbolic leading (batch) dimension (default: the "
        "model's own batch size when it is fixed, else 1)",
    )
    parser.add_argument(
        "-shapes",
        "--input_shapes",
        type=_shapes,
        metavar="SHAPES",
        help='exact shape of every input, in input order, e.g. "[1,3,224,224],[1,128]" '
        "(default: the batch size for the symbolic dims that name the batch; any other "
        "symbolic dim needs this option)",
    )
    parser.add_argument(
        "-ncores",
        "--num_cores",
        type=_positive(int),
        help=f"cores to run on, as ONNX Runtime intra-op threads (default: all, "
        f"{available_cores()} here)",
    )
    parser.add_argument(
        "-s",
        "--scenario",
        choices=["sync", "async"],
        default="sync",
        help="sync: one request at a time (latency); async: several streams of requests at once, "
        "the cores split between them (throughput). Default sync",
    )
    parser.add_argument(
        "-nstreams",
        "--num_streams",
        type=_positive(int),
        help="concurrent streams of the async scenario, each its own session (default: half the "
        "cores, at least 2 when there are 2)",
    )
    parser.add_argument(
        "-t", "--time", type=_positive(float), default=10.0, help="seconds to measure (default 10)"
    )
    parser.add_argument(
        "-w",
        "--warmup_time",
        type=_non_negative(float),
        default=2.0,
        help="seconds to run untimed first (default 2)",
    )
    engine = parser.add_mutually_exclusive_group()
    engine.add_argument(
        "-e",
        "--engine",
        choices=[ORTSPARSE, ONNXRUNTIME],
        default=ORTSPARSE,
        help="ortsparse: rewrite the model (cached) and run the rewrite; onnxruntime: run the "
        "model as it is. Default ortsparse",
    )
    engine.add_argument(
        "--compare",
        action="store_true",
        help="run ONNX Runtime on the model, then ortsparse on its rewrite, and print both and "
        "the ratio of their throughputs",
    )
    parser.add_argument(
        "--min-sparsity",
        type=fraction,
        metavar="FLOAT",
        help="rewrite every weight with at least this fraction of zeros, instead of letting the "
        "cost model decide (as rewrite-model --min-sparsity)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="run ortsparse's rewrite as the cost model made it, without timing it against the "
        "original on this CPU first (by default ORT's nodes are kept wherever ortsparse is not "
        "faster, measured at this run's batch size or shapes and thread count)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the results: no progress"
    )
    parser.add_argument(
        "-x", "--export_path", type=Path, help="also write the configuration and results as JSON"
    )
    parser.add_argument(
        "--pipeline",
        choices=sorted(Pipeline.TASKS),
        help="time the task's whole pipeline (pre-processing, engine, post-processing, each "
        "printed) on --images instead of the model alone; takes -b, -ncores, -t, -w, -e, "
        "--compare and -q",
    )
    parser.add_argument(
        "--images",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="with --pipeline: image files or directories of them to run on (default: a random "
        "480x640 image)",
    )


def _positive(kind: type) -> Callable[[str], float]:
    def parse(text: str):
        value = _number(kind, text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _non_negative(kind: type) -> Callable[[str], float]:
    def parse(text: str):
        value = _number(kind, text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
        return value

    return parse


def _number(kind: type, text: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not {'an integer' if kind is int else 'a number'}: {text!r}"
        ) from None


def _shapes(text: str) -> list[list[int]]:
    try:
        return parse_input_shapes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class _Plan:
    """What to run, from the arguments."""

    engines: list[str]
    cores: int
    threads_per_stream: list[int]


@dataclass(frozen=True)
class _Run:
    engine: str
    prepared: PreparedModel
    results: BenchmarkResults


def run_benchmark(args: argparse.Namespace) -> int:
    console = _Console(args.quiet)
    if args.pipeline is not None:
        return _run_pipeline(args)
    if args.images is not None:
        print("error: --images goes with --pipeline", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        plan = _plan(args)
        check_model_file(Path(args.model))
        specs = model_input_specs(onnx.load(args.model, load_external_data=False))
        _check_sized(args, specs)
    except (_BadArguments, RewriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    verification_shapes = _verification_shapes(args, specs)
    runs: list[_Run] = []
    inputs = None
    for engine in plan.engines:
        try:
            prepared = _prepare(engine, args, plan, verification_shapes, console)
            sessions = _sessions(prepared, plan.threads_per_stream)
            if inputs is None:
                inputs = _inputs(sessions[0], args, console)
            results = _measure(engine, sessions, inputs, args, plan, console)
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except _ORT_ERRORS as error:
            print(f"error: {engine} failed on {args.model}: {_first_line(error)}", file=sys.stderr)
            return EXIT_RUNTIME_FAILURE
        runs.append(_Run(engine, prepared, results))
        if len(runs) > 1:
            print()
        print("\n".join(_result_lines(args, plan, inputs, runs[-1])), flush=True)
    ratio = _throughput_ratio(runs)
    if ratio is not None:
        print(f"\nSpeedup (ortsparse / onnxruntime throughput): {ratio:.2f}x")
    if args.export_path is not None:
        console.info(f"saving the results as JSON to {args.export_path}")
        try:
            args.export_path.write_text(json.dumps(_export(args, plan, inputs, runs), indent=2))
        except OSError as error:
            print(
                f"error: cannot write {args.export_path}: {error.strerror or error}",
                file=sys.stderr,
            )
            return EXIT_CANNOT_WRITE
    return 0


def _run_pipeline(args: argparse.Namespace) -> int:
    alone = {
        "-shapes": args.input_shapes is not None,
        "-s async": args.scenario != "sync",
        "-nstreams": args.num_streams is not None,
        "--min-sparsity": args.min_sparsity is not None,
        "--no-verify": args.no_verify,
        "-x": args.export_path is not None,
    }
    refused = [flag for flag, given in alone.items() if given]
    if refused:
        print(f"error: --pipeline does not take {', '.join(refused)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    engines = [ONNXRUNTIME, ORTSPARSE] if args.compare else [args.engine]
    return run_pipeline_benchmark(args, engines)


def _check_sized(args: argparse.Namespace, specs: list[InputSpec]) -> None:
    """Without -shapes, a symbolic dim other than the batch has no size to run at: the error
    names them (a guess such as 1 would time another model, or fail inside ORT)."""
    if args.input_shapes is not None:
        return
    unsized = unsized_dims(specs)
    if unsized:
        dims = "; ".join(f"input '{name}': {', '.join(dims)}" for name, dims in unsized.items())
        example = ",".join(
            f"[{','.join(str(dim) if isinstance(dim, int) else '?' for dim in spec.shape)}]"
            for spec in specs
        )
        raise _BadArguments(
            f"the model has symbolic dims that are not its batch ({dims}): give every input's "
            f'shape with -shapes, e.g. -shapes "{example}" with the ? filled in'
        )


def _plan(args: argparse.Namespace) -> _Plan:
    cores = args.num_cores or available_cores()
    if args.scenario == "sync":
        if args.num_streams is not None:
            raise _BadArguments("-nstreams/--num_streams needs the async scenario (-s async)")
        streams = 1
    else:
        streams = args.num_streams or min(cores, max(2, cores // 2))
    engines = [ONNXRUNTIME, ORTSPARSE] if args.compare else [args.engine]
    return _Plan(engines, cores, split_cores(cores, streams))


def _prepare(
    engine: str,
    args: argparse.Namespace,
    plan: _Plan,
    verification_shapes: dict[str, tuple[int, ...]] | None,
    console: _Console,
) -> PreparedModel:
    if engine == ONNXRUNTIME:
        return unchanged_model(args.model)
    console.info(f"ortsparse: rewriting {args.model}, or finding its rewrite in the cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        prepared = prepare_model(
            args.model,
            min_sparsity=args.min_sparsity,
            progress=lambda message: console.info(f"  rewrite: {message}"),
            verify=not args.no_verify,
            threads=plan.threads_per_stream[0],
            input_shapes=verification_shapes,
        )
    for warning in caught:
        console.warn(str(warning.message))
    where = f"cached in {prepared.cache_entry}" if prepared.cache_entry else "not cached"
    console.info(f"ortsparse: {_rewritten(prepared)} ({where})")
    return prepared


def _verification_shapes(
    args: argparse.Namespace, specs: list[InputSpec]
) -> dict[str, tuple[int, ...]] | None:
    """The shapes this run feeds, to verify the rewrite with; None where they do not fit the
    model (the run then says why)."""
    try:
        return resolve_input_shapes(specs, args.batch_size, args.input_shapes).shapes
    except InputError:
        return None


def _rewritten(prepared: PreparedModel) -> str:
    return (
        f"{prepared.rewritten_nodes} of {prepared.candidate_nodes} MatMul/Gemm/Conv nodes rewritten"
    )


def _sessions(prepared: PreparedModel, threads_per_stream: list[int]) -> list[ort.InferenceSession]:
    sessions = []
    for threads in threads_per_stream:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if prepared.has_ortsparse_ops:
            options.register_custom_ops_library(ortsparse.library_path())
        sessions.append(
            ort.InferenceSession(prepared.source, options, providers=["CPUExecutionProvider"])
        )
    return sessions


@dataclass(frozen=True)
class _Inputs:
    batch_size: int
    specs: list[InputSpec]
    arrays: list[np.ndarray]


def _inputs(session: ort.InferenceSession, args: argparse.Namespace, console: _Console) -> _Inputs:
    specs = input_specs(session)
    resolved = resolve_input_shapes(specs, args.batch_size, args.input_shapes)
    arrays = random_inputs(specs, resolved.shapes)
    for spec, array in zip(specs, arrays):
        console.info(f"input '{spec.name}': {spec.type} {list(array.shape)} (random)")
    return _Inputs(resolved.batch_size, specs, arrays)


def _measure(
    engine: str,
    sessions: list[ort.InferenceSession],
    inputs: _Inputs,
    args: argparse.Namespace,
    plan: _Plan,
    console: _Console,
) -> BenchmarkResults:
    console.info(
        f"{engine}: {args.scenario} scenario, cores {_cores_line(plan)}; {args.warmup_time:g} s "
        f"warmup, {args.time:g} s measured"
    )
    results = measure(
        [session_runner(session, inputs.specs, inputs.arrays) for session in sessions],
        inputs.batch_size,
        args.time,
        args.warmup_time,
        console.progress(engine),
    )
    console.end_progress()
    return results


def _cores_line(plan: _Plan) -> str:
    """E.g. "2 (1 stream x 2 threads)", "3 (2 streams x 2/1 threads)"."""
    streams = len(plan.threads_per_stream)
    threads = "/".join(str(count) for count in sorted(set(plan.threads_per_stream), reverse=True))
    most = max(plan.threads_per_stream)
    note = ", more streams than cores" if streams > plan.cores else ""
    return (
        f"{plan.cores} ({streams} stream{'s' if streams > 1 else ''} x {threads} "
        f"thread{'s' if most > 1 else ''}{note})"
    )


def _result_lines(args: argparse.Namespace, plan: _Plan, inputs: _Inputs, run: _Run) -> list[str]:
    engine = run.engine
    if engine == ORTSPARSE:
        engine += f" ({_rewritten(run.prepared)})"
    shapes = ", ".join(
        f"{spec.name}=[{','.join(map(str, array.shape))}]"
        for spec, array in zip(inputs.specs, inputs.arrays)
    )
    return [
        f"Original Model Path: {args.model}",
        f"Engine: {engine}",
        f"Batch Size: {inputs.batch_size}",
        f"Input Shapes: {shapes}",
        f"Scenario: {args.scenario}",
        f"Cores: {_cores_line(plan)}",
        *format_results(run.results),
    ]


def _throughput_ratio(runs: list[_Run]) -> float | None:
    rates = {run.engine: run.results.items_per_second for run in runs}
    if set(rates) != {ORTSPARSE, ONNXRUNTIME}:
        return None
    return rates[ORTSPARSE] / rates[ONNXRUNTIME]


def _export(args: argparse.Namespace, plan: _Plan, inputs: _Inputs, runs: list[_Run]) -> dict:
    report = isa.cpu_report()
    return {
        "ortsparse_version": ortsparse.__version__,
        "onnxruntime_version": ort.__version__,
        "cpu": {
            "model": report["model"],
            "logical_cores": report["logical_cores"],
            "cpu_avx_type": isa.cpu_avx_type(report),
            "cpu_vnni": isa.cpu_vnni(report),
        },
        "config": {
            "model": args.model,
            "engine": "compare" if args.compare else args.engine,
            "batch_size": inputs.batch_size,
            "inputs": [
                {"name": spec.name, "type": spec.type, "shape": list(array.shape)}
                for spec, array in zip(inputs.specs, inputs.arrays)
            ],
            "num_cores": plan.cores,
            "scenario": args.scenario,
            "num_streams": len(plan.threads_per_stream),
            "threads_per_stream": plan.threads_per_stream,
            "time": args.time,
            "warmup_time": args.warmup_time,
            "min_sparsity": args.min_sparsity,
        },
        "runs": [_exported_run(run) for run in runs],
        "throughput_ratio": _throughput_ratio(runs),
    }


def _exported_run(run: _Run) -> dict:
    rewritten = run.engine == ORTSPARSE
    source = run.prepared.source
    return {
        "engine": run.engine,
        "model_path": source if isinstance(source, str) else None,
        "has_ortsparse_ops": run.prepared.has_ortsparse_ops,
        "rewritten_nodes": run.prepared.rewritten_nodes if rewritten else None,
        "candidate_nodes": run.prepared.candidate_nodes if rewritten else None,
        "results": run.results.summary(),
    }


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _Console:
    """What the command says on stderr while it works; nothing when quiet. On a terminal the
    progress line is rewritten in place, elsewhere it is a new line each time."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet
        self._line_open = False

    def info(self, message: str) -> None:
        if not self._quiet:
            self.end_progress()
            print(f"[benchmark] {message}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        """Shown even when quiet."""
        self.end_progress()
        print(f"warning: {message}", file=sys.stderr, flush=True)

    def progress(self, engine: str) -> Progress | None:
        if self._quiet:
            return None

        def show(phase: str, done: float, total: float, iterations: int) -> None:
            if phase == "warmup":
                text = f"[benchmark] {engine}: warming up, {done:.0f} of {total:g} s"
            else:
                text = (
                    f"[benchmark] {engine}: measuring, {done:.0f} of {total:g} s, "
                    f"{iterations} iterations"
                )
            if sys.stderr.isatty():
                sys.stderr.write(f"\r{text}\033[K")
                sys.stderr.flush()
                self._line_open = True
            else:
                print(text, file=sys.stderr, flush=True)

        return show

    def end_progress(self) -> None:
        if self._line_open:
            sys.stderr.write("\n")
            self._line_open = False
