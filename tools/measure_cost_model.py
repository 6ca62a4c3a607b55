#!/usr/bin/env python3
"""Measures the rewriter's cost model on this machine and writes cost_model_data.json.

Times, on one thread, ONNX Runtime's dense MatMul and ortsparse's SparseGemm (csr on unstructured
weights, block4 on 4-channel-block weights) at several shapes, densities and row counts M, in
single-node models; then fits the linear model of python/ortsparse/rewriter/cost_model.py by
non-negative least squares on relative errors. Each kernel family this CPU supports is measured in
a child process started with ORTSPARSE_ISA set to that family; dense MatMul is timed alternately
with SparseGemm there, so that the two are compared under the same machine state.

    .venv/bin/python tools/measure_cost_model.py                  # every family this CPU has
    .venv/bin/python tools/measure_cost_model.py --families avx2 --output /tmp/costs.json

Which families the CPU supports comes from the compiled ISA module (ortsparse._isa). Without it,
e.g. run from the source tree as
    PYTHONPATH=python ORTSPARSE_LIBRARY=build/libortsparse_ops.so python tools/measure_cost_model.py
only the provider's default family is measured, under the key "default".
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import ortsparse
from ortsparse.rewriter.cost_model import REPRESENTATIVE_M, CostModel, KernelCosts
from ortsparse.rewriter.packing import count_stored_blocks, pack
from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import DOMAIN, OPSET_VERSION

# The source tree's copy, not the one of whichever ortsparse is imported (maybe an installed one).
DATA_PATH = Path(__file__).resolve().parents[1] / "python/ortsparse/rewriter/cost_model_data.json"

# provider/isa/cpu_features.h, KernelFamily, least to most capable.
FAMILY_ORDER = ("scalar", "avx2", "avx512", "avx512vnni")

# Rows of X per call. The linear model is for batched calls; single rows (M=1) take the kernel's
# matrix-vector path, which a fit across M cannot describe as well.
ROWS = (16, 64, 256)
SHAPES = ((512, 512), (1024, 1024), (768, 3072))  # (K, N)
DENSITIES = (0.02, 0.05, 0.1, 0.2, 0.4)
BREAK_EVEN_SHAPES = ((1024, 1024), (768, 3072))

ROUNDS = 7
SECONDS_PER_BATCH = 0.01
FLOAT = onnx.TensorProto.FLOAT


def progress(message: str) -> None:
    print(f"[measure] {message}", file=sys.stderr, flush=True)


# --- timing ------------------------------------------------------------------------------------


def session(model: onnx.ModelProto, library: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if library:
        options.register_custom_ops_library(library)
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def nanoseconds_per_run(sessions: list[ort.InferenceSession], x: np.ndarray) -> list[float]:
    """Each session's run time: the fastest batch mean over ROUNDS rounds that run one batch of
    each session in turn, so that all of them see the same machine state (this matters on a
    shared virtual machine, whose speed drifts by tens of percent)."""
    feeds = {"X": x}
    runs_per_batch = []
    for sess in sessions:
        start = time.perf_counter()
        sess.run(None, feeds)  # warm-up, and the size of a batch
        runs_per_batch.append(
            max(1, int(SECONDS_PER_BATCH / max(time.perf_counter() - start, 1e-6)))
        )
    best = [float("inf")] * len(sessions)
    for _ in range(ROUNDS):
        for index, (sess, runs) in enumerate(zip(sessions, runs_per_batch)):
            start = time.perf_counter_ns()
            for _ in range(runs):
                sess.run(None, feeds)
            best[index] = min(best[index], (time.perf_counter_ns() - start) / runs)
    return best


def single_node_model(
    node: onnx.NodeProto, initializers: list, k: int, n: int, opsets: list
) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node],
        "cost",
        [helper.make_tensor_value_info("X", FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", FLOAT, ["M", n])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def dense_model(weight: np.ndarray) -> onnx.ModelProto:
    k, n = weight.shape
    node = helper.make_node("MatMul", ["X", "W"], ["Y"])
    return single_node_model(
        node, [numpy_helper.from_array(weight, "W")], k, n, [helper.make_opsetid("", 17)]
    )


def sparse_model(weight: np.ndarray, format: str) -> onnx.ModelProto:
    packed = pack(weight, format)
    gemm = SparseGemm("gemm", "X", "values", "offsets", "indices", packed.k, packed.n, format, "Y")
    initializers = [
        numpy_helper.from_array(packed.values, "values"),
        numpy_helper.from_array(packed.group_offsets, "offsets"),
        numpy_helper.from_array(packed.input_indices, "indices"),
    ]
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, OPSET_VERSION)]
    return single_node_model(gemm.to_node(), initializers, packed.k, packed.n, opsets)


def random_weight(
    k: int, n: int, density: float, block: int, rng: np.random.Generator
) -> np.ndarray:
    """Unstructured zeros (block 1) or whole zero runs of ``block`` output channels."""
    groups = -(-n // block)
    kept = rng.random((k, groups)) < density
    mask = np.repeat(kept, block, axis=1)[:, :n]
    return (rng.standard_normal((k, n)) * mask).astype(np.float32)


# --- measuring ---------------------------------------------------------------------------------


def measure(library: str) -> tuple[list[dict], list[dict]]:
    """Times SparseGemm at every point, alternating with dense MatMul of the same shape; returns
    the dense points (the fastest time seen per shape and M) and the sparse points."""
    rng = np.random.default_rng(1)
    dense_ns: dict[tuple[int, int, int], float] = {}
    sparse_points = []
    for k, n in SHAPES:
        dense_session = session(dense_model(rng.standard_normal((k, n)).astype(np.float32)))
        for density, (format, block) in itertools.product(DENSITIES, (("csr", 1), ("block4", 4))):
            weight = random_weight(k, n, density, block, rng)
            sparse_session = session(sparse_model(weight, format), library)
            blocks = count_stored_blocks(weight, format)
            for m in ROWS:
                x = rng.standard_normal((m, k)).astype(np.float32)
                dense, sparse = nanoseconds_per_run([dense_session, sparse_session], x)
                dense_ns[(m, k, n)] = min(dense_ns.get((m, k, n), float("inf")), dense)
                sparse_points.append(
                    {"m": m, "k": k, "n": n, "format": format, "blocks": blocks, "ns": sparse}
                )
            progress(
                f"{k}x{n} {format:<6} density {density:<4} at M={m}: "
                f"{sparse / 1e3:8.1f} us, dense {dense / 1e3:8.1f} us"
            )
    dense_points = [{"m": m, "k": k, "n": n, "ns": ns} for (m, k, n), ns in dense_ns.items()]
    return dense_points, sparse_points


# --- fitting -----------------------------------------------------------------------------------


def fit_non_negative(features: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative coefficients minimising relative error (each row divided by its time), by
    trying every subset of active columns: exact, and cheap for a handful of columns. Returns the
    coefficients and the largest relative error of the fit."""
    weighted, ones = features / times[:, None], np.ones(len(times))
    best, best_residual = None, float("inf")
    for active in itertools.product((False, True), repeat=features.shape[1]):
        columns = np.flatnonzero(active)
        if len(columns) == 0:
            continue
        solution, *_ = np.linalg.lstsq(weighted[:, columns], ones, rcond=None)
        if np.any(solution < 0):
            continue
        residual = float(np.sum((weighted[:, columns] @ solution - ones) ** 2))
        if residual < best_residual:
            best_residual = residual
            best = np.zeros(features.shape[1])
            best[columns] = solution
    max_relative_error = float(np.max(np.abs(features @ best / times - 1)))
    return best, max_relative_error


def fit_dense(points: list[dict]) -> tuple[dict, float]:
    features = np.array([[1.0, p["m"] * p["k"] * p["n"]] for p in points])
    (per_call, per_mac), error = fit_non_negative(features, np.array([p["ns"] for p in points]))
    return {"dense_ns_per_call": per_call, "dense_ns_per_mac": per_mac}, error


def fit_sparse(points: list[dict]) -> tuple[dict, float]:
    def row(p):
        work = p["m"] * p["blocks"]
        return [
            1.0,
            p["m"] * p["n"],
            work if p["format"] == "csr" else 0.0,
            work if p["format"] == "block4" else 0.0,
        ]

    features = np.array([row(p) for p in points])
    coefficients, error = fit_non_negative(features, np.array([p["ns"] for p in points]))
    names = (
        "sparse_ns_per_call",
        "sparse_ns_per_output",
        "csr_ns_per_nonzero_row",
        "block4_ns_per_block_row",
    )
    return dict(zip(names, coefficients)), error


# --- families ----------------------------------------------------------------------------------


def cpu() -> dict | None:
    """The ISA module's CPU report, None where the module is not built."""
    try:
        from ortsparse.isa import cpu_report
    except ImportError:
        return None
    return cpu_report()


def supported_families() -> list[str]:
    """Families from scalar up to the best one this CPU supports; [] without the ISA module."""
    report = cpu()
    if report is None:
        return []
    return list(FAMILY_ORDER[: FAMILY_ORDER.index(report["best_kernel_family"]) + 1])


def measure_family_in_child(family: str | None, library: str) -> dict:
    """Measures and fits in a child process whose ORTSPARSE_ISA is ``family``."""
    env = dict(os.environ)
    if family:
        env["ORTSPARSE_ISA"] = family
    child = subprocess.run(
        [sys.executable, __file__, "--family-child", "--library", library],
        env=env,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return json.loads(child.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=DATA_PATH,
        help=f"where to write the data (default {DATA_PATH})",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        choices=FAMILY_ORDER,
        help="kernel families to measure (default: all this CPU supports)",
    )
    parser.add_argument(
        "--library", help="the custom-op library (default: ortsparse.library_path())"
    )
    parser.add_argument("--family-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    library = args.library or ortsparse.library_path()

    if args.family_child:
        dense_points, sparse_points = measure(library)
        dense, dense_error = fit_dense(dense_points)
        sparse, sparse_error = fit_sparse(sparse_points)
        print(
            json.dumps(
                {
                    "constants": {**dense, **sparse},
                    "max_relative_error": {"dense": dense_error, "sparse": sparse_error},
                }
            )
        )
        return 0

    families = args.families or supported_families()
    data = {
        "measured": True,
        "machine": {
            "cpu": (cpu() or {}).get("model", platform.machine()),
            "onnxruntime": ort.__version__,
            "threads": 1,
        },
        "default_family": families[-1] if families else "default",
        "families": {},
        "max_relative_fit_error": {},
    }
    for family in families or [None]:
        progress(f"kernel family {family or '(the default)'}")
        measured = measure_family_in_child(family, library)
        key = family or "default"
        data["families"][key] = measured["constants"]
        data["max_relative_fit_error"][key] = measured["max_relative_error"]

    args.output.write_text(json.dumps(data, indent=2) + "\n")
    progress(f"wrote {args.output}")
    for family, constants in data["families"].items():
        model = CostModel(KernelCosts(**constants), family)
        for k, n in BREAK_EVEN_SHAPES:
            break_even = {
                fmt: model.break_even_sparsity(REPRESENTATIVE_M, k, n, fmt)
                for fmt in ("csr", "block4")
            }
            print(
                f"{family:<11} {k}x{n} at M={REPRESENTATIVE_M}: break-even sparsity "
                f"csr {break_even['csr']:.1%}, block4 {break_even['block4']:.1%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
