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


def _run_sparsify(args: argparse.Namespace) -> int:
    from ortsparse.sparsify.command import run_sparsify

    return run_sparsify(args)


def _add_sparsify_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.sparsify.command import add_sparsify_arguments

    add_sparsify_arguments(parser)


def _run_benchmark(args: argparse.Namespace) -> int:
    from ortsparse.benchmark_command import run_benchmark

    return run_benchmark(args)


def _add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.benchmark_command import add_benchmark_arguments

    add_benchmark_arguments(parser)


def _run_server(args: argparse.Namespace) -> int:
    from ortsparse.server import ConfigError, Endpoint, ServerConfig, load_config, serve

    endpoint_options = {
        "batch_size": args.batch_size,
        "num_cores": args.num_cores,
        "engine_type": args.engine_type,
        "verify": False if args.no_verify else None,
    }
    try:
        if args.config is not None:
            given = [name for name, value in endpoint_options.items() if value is not None]
            if args.task or args.model_path or given:
                raise ConfigError(
                    "with --config, the endpoints' task, model and options go in the file"
                )
            config = load_config(args.config)
        elif not (args.task and args.model_path):
            raise ConfigError("give --task and --model_path, or --config")
        else:
            options = {name: value for name, value in endpoint_options.items() if value is not None}
            config = ServerConfig([Endpoint(args.task, args.model_path, **options)])
        for name in ("host", "port", "workers", "max_upload_bytes"):
            if getattr(args, name) is not None:
                setattr(config, name, getattr(args, name))
        serve(config)
    except (ConfigError, ValueError, ImportError, FileNotFoundError) as error:
        print(f"ortsparse server: {error}", file=sys.stderr)
        return 2
    return 0


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.rewriter.command import positive_int

    parser.add_argument(
        "--num-cores", "--num_cores", type=positive_int, help="intra-op threads (default: all)"
    )
    parser.add_argument(
        "--engine-type",
        "--engine_type",
        choices=("ortsparse", "onnxruntime"),
        help="ortsparse (default: the model's rewrite, cached) or onnxruntime (the model as it is)",
    )


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    from ortsparse.pipelines import Pipeline
    from ortsparse.rewriter.command import positive_int

    parser.add_argument("--task", choices=sorted(Pipeline.TASKS), help="the pipeline to serve")
    parser.add_argument("--model_path", "--model-path", help="its ONNX model")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=positive_int, help="port to listen on (default 5543)")
    parser.add_argument(
        "--batch-size", "--batch_size", type=positive_int, help="images per engine run (default 1)"
    )
    _add_engine_arguments(parser)
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="serve ortsparse's rewrite as the cost model made it, without timing it against the "
        "original on this CPU first",
    )
    parser.add_argument(
        "--workers", type=positive_int, help="requests served at once (default: one per core)"
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=positive_int,
        help="largest request body accepted (default 20 MB)",
    )
    parser.add_argument(
        "--config",
        help="a YAML file of several endpoints instead of --task and --model_path: a list "
        "'endpoints', each with task, model, route and optionally name, batch_size, num_cores, "
        "engine_type, verify and kwargs (class_names, image_size); host, port, workers and "
        "max_upload_bytes beside it. Relative model paths are read from the file's directory",
    )


def _run_annotate(args: argparse.Namespace) -> int:
    from ortsparse.annotate import annotate, image_files
    from ortsparse.pipelines import ImageError, Pipeline

    try:
        sources = image_files(args.source)
        pipeline = Pipeline.create(
            "yolo",
            args.model_path,
            num_cores=args.num_cores,
            engine_type=args.engine_type or "ortsparse",
        )
        annotate(
            pipeline,
            sources,
            args.out,
            conf_thres=args.conf_thres,
            iou_thres=args.iou_thres,
        )
    except (ImageError, ValueError, ImportError, FileNotFoundError) as error:
        print(f"ortsparse annotate: {error}", file=sys.stderr)
        return 2
    return 0


def _add_annotate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_path", "--model-path", required=True, help="a YOLO ONNX model")
    parser.add_argument("--source", required=True, help="an image, or a directory of images")
    parser.add_argument(
        "--out", default="annotations", help="directory to write into (default ./annotations)"
    )
    parser.add_argument(
        "--conf-thres", "--conf_thres", type=float, default=0.25, help="least score (default 0.25)"
    )
    parser.add_argument(
        "--iou-thres", "--iou_thres", type=float, default=0.7, help="NMS overlap (default 0.7)"
    )
    _add_engine_arguments(parser)


def _run_cache(args: argparse.Namespace) -> int:
    import time

    from ortsparse.rewrite_cache import cache_entries, clear_cache, default_cache_dir

    directory = args.cache_dir or default_cache_dir()
    if args.action == "clear":
        removed = clear_cache(directory)
        freed = sum(entry.size_bytes for entry in removed) / 1e6
        print(
            f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({freed:.1f} MB) "
            f"from {directory}"
        )
        return 0
    entries = cache_entries(directory)
    print(
        f"{directory}: {len(entries)} entries, "
        f"{sum(entry.size_bytes for entry in entries) / 1e6:.1f} MB (most recently used first)"
    )
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        rewritten = "?" if entry.rewritten_nodes is None else entry.rewritten_nodes
        print(
            f"  {entry.path.name[:16]}  {entry.size_bytes / 1e6:8.1f} MB  used {used}  "
            f"{rewritten} node(s) rewritten  {entry.model}"
        )
    return 0


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

    sparsify = commands.add_parser(
        "sparsify",
        help="prune a dense ONNX model one-shot, in a pattern the kernels run fast",
        description="Prune the MatMul, Gemm and Conv weights of a dense ONNX model to a target "
        "sparsity in one of the patterns ortsparse's kernels store, one-shot (no training): by "
        "magnitude, or by layer-wise reconstruction from calibration inputs, which updates the "
        "weights kept so that each layer's output changes least. Prints each layer's sparsity "
        "and output error; `ortsparse rewrite` then takes the result.",
    )
    _add_sparsify_arguments(sparsify)
    sparsify.set_defaults(run=_run_sparsify)

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

    server = commands.add_parser(
        "server",
        help="serve image pipelines (yolo, image_classification) over HTTP",
        description="Serve a pipeline over HTTP (FastAPI + uvicorn; pip install "
        "'ortsparse[server]'): POST images to /predict/from_files (multipart field 'request') "
        "or /predict (JSON, base64 images); /health, /v2/models and /docs besides. Stops "
        "gracefully on SIGINT or SIGTERM.",
    )
    _add_server_arguments(server)
    server.set_defaults(run=_run_server)

    annotate = commands.add_parser(
        "annotate",
        help="draw a YOLO model's detections onto images",
        description="Run the yolo pipeline on an image or a directory of images and write each "
        "with its boxes, labels and scores drawn on (same file name, into --out).",
    )
    _add_annotate_arguments(annotate)
    annotate.set_defaults(run=_run_annotate)

    cache = commands.add_parser(
        "cache",
        help="list or empty the cache of rewritten models",
        description="List the rewrite cache's entries (size, last use, the model each came "
        "from) or delete them all. The cache deletes its least recently used entries itself "
        "beyond ORTSPARSE_CACHE_LIMIT_MB megabytes (default 2048).",
    )
    cache.add_argument("action", choices=("list", "clear"))
    cache.add_argument(
        "--cache-dir", help="the cache's directory (default: models/ in ortsparse's cache root)"
    )
    cache.set_defaults(run=_run_cache)
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
