"""Timing loops and their statistics, shared by `ortsparse benchmark` and Engine.benchmark.

Scenarios, as in DeepSparse: sync runs one stream of requests, each waiting for the previous one
(latency); async runs several streams at once (throughput), each its own session on its share of
the cores. ONNX Runtime releases the GIL while it runs, so the streams' threads run in parallel.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from onnx import TensorProto

from ortsparse.inputs import InputSpec, to_feed

#: progress(phase, seconds_done, seconds_total, iterations), where phase is "warmup" or "measure".
Progress = Callable[[str, float, float, int], None]


@dataclass(frozen=True)
class BenchmarkResults:
    """Statistics of a timed run: throughput over the whole measurement, latency per batch."""

    batch_size: int
    seconds: float  # wall time of the measurement, all streams together
    latencies_ms: tuple[float, ...]  # one per completed run (batch)

    @property
    def iterations(self) -> int:
        return len(self.latencies_ms)

    @property
    def items_per_second(self) -> float:
        return self.iterations * self.batch_size / self.seconds

    @property
    def latency_mean_ms(self) -> float:
        return float(np.mean(self.latencies_ms))

    @property
    def latency_median_ms(self) -> float:
        return float(np.median(self.latencies_ms))

    @property
    def latency_std_ms(self) -> float:
        return float(np.std(self.latencies_ms))

    @property
    def latency_p90_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 90))

    @property
    def latency_p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99))

    def summary(self) -> dict:
        """The statistics as `ortsparse benchmark -x` exports them (docs/benchmark.md)."""
        return {
            "throughput_items_per_sec": self.items_per_second,
            "latency_ms_per_batch": {
                "mean": self.latency_mean_ms,
                "median": self.latency_median_ms,
                "std": self.latency_std_ms,
                "p90": self.latency_p90_ms,
                "p99": self.latency_p99_ms,
            },
            "iterations": self.iterations,
            "seconds": self.seconds,
        }

    def __str__(self) -> str:
        return "\n".join(format_results(self))


def format_results(results: BenchmarkResults) -> list[str]:
    """The result lines DeepSparse's benchmark prints, plus p90 and p99."""
    return [
        f"Throughput (items/sec): {results.items_per_second:.4f}",
        f"Latency Mean (ms/batch): {results.latency_mean_ms:.4f}",
        f"Latency Median (ms/batch): {results.latency_median_ms:.4f}",
        f"Latency Std (ms/batch): {results.latency_std_ms:.4f}",
        f"Latency p90 (ms/batch): {results.latency_p90_ms:.4f}",
        f"Latency p99 (ms/batch): {results.latency_p99_ms:.4f}",
        f"Iterations: {results.iterations}",
    ]


def session_runner(
    session: ort.InferenceSession, specs: Sequence[InputSpec], arrays: Sequence[np.ndarray]
) -> Callable[[], object]:
    """One run of ``session`` on ``arrays``, as cheap as ORT's Python API allows: inputs made
    OrtValues once and outputs left as OrtValues, so that no copy is timed and output types numpy
    lacks (bfloat16, float8) do not fail. String inputs cannot be OrtValues, so a model with any
    goes through session.run, which converts every output to numpy (and so fails on those
    types)."""
    if any(spec.onnx_type == TensorProto.STRING for spec in specs):
        feeds = {spec.name: to_feed(spec, array) for spec, array in zip(specs, arrays)}
        return lambda: session.run(None, feeds)
    values = {spec.name: _ort_value(to_feed(spec, array)) for spec, array in zip(specs, arrays)}
    return lambda: session.run_with_ort_values(None, values)


def _ort_value(feed: np.ndarray | ort.OrtValue) -> ort.OrtValue:
    return feed if isinstance(feed, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(feed)


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def split_cores(cores: int, streams: int) -> list[int]:
    """Threads for each stream: ``cores`` shared out as evenly as possible, at least one each."""
    share, extra = divmod(cores, streams)
    return [max(1, share + (stream < extra)) for stream in range(streams)]


def measure(
    streams: Sequence[Callable[[], object]],
    batch_size: int,
    seconds: float,
    warmup_seconds: float,
    progress: Progress | None = None,
    progress_interval: float = 1.0,
) -> BenchmarkResults:
    """Runs every callable of ``streams`` in its own thread, over and over: ``warmup_seconds``
    untimed, then ``seconds`` timed (each stream at least once). Throughput counts the runs of all
    streams over the wall time from the first timed start to the last end.

    ``progress`` is called every ``progress_interval`` seconds from the calling thread. An
    exception in any stream stops all of them and is raised here.
    """
    clock = time.perf_counter
    warmup_end = clock() + warmup_seconds
    deadline = warmup_end + seconds
    stop = threading.Event()
    finished = threading.Semaphore(0)
    latencies: list[list[float]] = [[] for _ in streams]
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []

    def run_stream(run: Callable[[], object], stream_latencies: list[float]) -> None:
        try:
            while clock() < warmup_end and not stop.is_set():
                run()
            first_start = clock()
            while True:
                start = clock()
                run()
                end = clock()
                stream_latencies.append((end - start) * 1000.0)
                if end >= deadline or stop.is_set():
                    break
            spans.append((first_start, end))
        except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(error)
            stop.set()
        finally:
            finished.release()

    threads = [
        threading.Thread(target=run_stream, args=(run, stream_latencies), daemon=True)
        for run, stream_latencies in zip(streams, latencies)
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in threads:
            while not finished.acquire(timeout=progress_interval):
                if progress is not None:
                    _report(progress, clock(), warmup_end, warmup_seconds, seconds, latencies)
    finally:  # also on KeyboardInterrupt: the streams stop after their current run
        stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    first_start = min(start for start, _ in spans)
    last_end = max(end for _, end in spans)
    return BenchmarkResults(
        batch_size, last_end - first_start, tuple(ms for stream in latencies for ms in stream)
    )


def _report(
    progress: Progress,
    now: float,
    warmup_end: float,
    warmup_seconds: float,
    seconds: float,
    latencies: list[list[float]],
) -> None:
    if now < warmup_end:
        progress("warmup", warmup_seconds - (warmup_end - now), warmup_seconds, 0)
    else:
        done = min(now - warmup_end, seconds)
        progress("measure", done, seconds, sum(len(stream) for stream in latencies))


def measure_iterations(
    run: Callable[[], object], batch_size: int, iterations: int, warmup_iterations: int
) -> BenchmarkResults:
    """``warmup_iterations`` untimed runs, then ``iterations`` timed ones, one after the other."""
    if iterations < 1 or warmup_iterations < 0:
        raise ValueError(
            f"need at least 1 iteration and no negative warmup, got {iterations} and "
            f"{warmup_iterations}"
        )
    for _ in range(warmup_iterations):
        run()
    latencies = []
    first_start = time.perf_counter()
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        latencies.append((time.perf_counter() - start) * 1000.0)
    return BenchmarkResults(batch_size, time.perf_counter() - first_start, tuple(latencies))
