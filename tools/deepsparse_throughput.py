"""Measures DeepSparse's synchronous throughput on an ONNX model; prints one JSON object.

Runs inside the DeepSparse virtual environment (tools/setup_deepsparse.sh), never in the project's:
the benchmarks call it as a subprocess so that the two engines never share a process.

    .venv-deepsparse/bin/python tools/deepsparse_throughput.py MODEL --batch 64 --threads 2 --time 5
    .venv-deepsparse/bin/python tools/deepsparse_throughput.py BERT --input-shapes '[[1,128,768]]'
"""

import argparse
import json
import shutil
import tempfile
import time

from deepsparse import compile_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="DeepSparse num_cores")
    parser.add_argument("--time", type=float, default=5.0, help="seconds to measure")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up")
    parser.add_argument(
        "--input-shapes",
        type=json.loads,
        help="JSON list of input shapes, batch included, e.g. [[1,128,768]], for symbolic dims",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="deepsparse-") as scratch:
        # DeepSparse rewrites the file it is given to fix the batch size; the caller's stays as is.
        model = shutil.copy(args.model, scratch)
        engine = compile_model(
            model, batch_size=args.batch, num_cores=args.threads, input_shapes=args.input_shapes
        )
        inputs = engine.generate_random_inputs()

    def run_for(seconds: float) -> tuple[int, float]:
        start = time.perf_counter()
        iterations = 0
        while time.perf_counter() - start < seconds:
            engine.run(inputs)
            iterations += 1
        return iterations, time.perf_counter() - start

    run_for(args.warmup)
    iterations, elapsed = run_for(args.time)
    print(json.dumps({
        "engine": "deepsparse",
        "items_per_second": iterations * args.batch / elapsed,
        "iterations": iterations,
        "batch": args.batch,
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
