"""`ortsparse benchmark MODEL --pipeline TASK`: a pipeline timed end to end on images, its time
split into pre-processing, engine and post-processing as DeepSparse's pipeline benchmark prints
it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ortsparse.pipelines import Pipeline, Timings
from ortsparse.rewriter.command import EXIT_BAD_INPUT

# The images of a run without --images: random photographs' stand-ins of this size.
RANDOM_IMAGE_SHAPE = (480, 640, 3)


def run_pipeline_benchmark(args: argparse.Namespace, engines: list[str]) -> int:
    images = _images(args.images)
    if isinstance(images, str):
        print(f"error: {images}", file=sys.stderr)
        return EXIT_BAD_INPUT
    batch_size = args.batch_size or 1
    results = []
    for engine in engines:
        _say(args, f"{engine}: creating the {args.pipeline} pipeline")
        try:
            pipeline = Pipeline.create(
                args.pipeline,
                args.model,
                batch_size=batch_size,
                num_cores=args.num_cores,
                engine_type=engine,
            )
        except (ValueError, ImportError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        batch = [images[index % len(images)] for index in range(batch_size)]
        _say(args, f"{engine}: warming up for {args.warmup_time:g} s")
        _run_for(pipeline, batch, args.warmup_time)
        _say(args, f"{engine}: measuring for {args.time:g} s")
        pipeline.timings = Timings()
        _run_for(pipeline, batch, args.time)
        results.append((engine, pipeline))
        if len(results) > 1:
            print()
        print("\n".join(_lines(args, pipeline)), flush=True)
    if len(results) == 2:
        (_, first), (_, second) = results
        ratio = (
            first.timings.total
            / first.timings.images
            / (second.timings.total / second.timings.images)
        )
        print(f"\nSpeedup (ortsparse / onnxruntime pipeline throughput): {ratio:.2f}x")
    return 0


def _images(paths: list[Path] | None) -> list | str:
    """The images to run on: the files given (a directory gives its images), else random
    arrays; an error message instead where a path holds no image."""
    if not paths:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, RANDOM_IMAGE_SHAPE, dtype=np.uint8)]
    from ortsparse.annotate import image_files

    try:
        return [file for path in paths for file in image_files(path)]
    except FileNotFoundError as error:
        return str(error)


def _run_for(pipeline: Pipeline, batch: list, seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while True:
        pipeline(batch)
        if time.perf_counter() >= deadline:
            return


def _lines(args: argparse.Namespace, pipeline: Pipeline) -> list[str]:
    timings = pipeline.timings
    per_call = {name: value / timings.calls for name, value in timings.as_dict().items()}
    return [
        f"Original Model Path: {args.model}",
        f"Pipeline: {pipeline.task} on {pipeline.engine_type}",
        f"Batch Size: {pipeline.batch_size}",
        f"Image Size: {pipeline.image_height}x{pipeline.image_width}",
        f"Cores: {pipeline.num_cores}",
        f"Throughput (images/sec): {timings.images / timings.total:.4f}",
        f"Pre-processing (ms/batch): {per_call['pre_process']:.4f}",
        f"Engine (ms/batch): {per_call['engine_forward']:.4f}",
        f"Post-processing (ms/batch): {per_call['post_process']:.4f}",
        f"Total (ms/batch): {per_call['total']:.4f}",
        f"Iterations: {timings.calls}",
    ]


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[benchmark] {message}", file=sys.stderr, flush=True)
