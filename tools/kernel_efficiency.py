#!/usr/bin/env python3
"""How close ortsparse's kernels come to the vector units' peak, per kernel family, on one thread.

Each op runs alone in a single-node model at a layer shape of ResNet-50 or BERT-base, 90% sparse
(INT8: 10% of the quads of 4 input features hold a weight), in every kernel family this CPU has
(ORTSPARSE_ISA). Useful work counts the products of stored weights with the rows (GEMM) or output
pixels (convolution) they multiply, nothing that padding, grids wider than the output or packing
add. Reported per family:

* FP32: vector FMAs per ns, the useful multiply-adds over the family's vector width (8 floats for
  AVX2, 16 for AVX-512), and that as a share of the core's peak, taken as 2 vector FMAs per
  cycle at the clock /proc/cpuinfo reports (a boosting core exceeds it, so a share is an upper
  bound of the true one).
* INT8: useful multiply-adds per ns, and per 32-bit vector lane per cycle, against what the
  family's instruction can do per lane: 4 for vpdpbusd (VNNI), 2 for vpmaddwd (AVX2, exact).

    .venv/bin/python tools/kernel_efficiency.py
    .venv/bin/python tools/kernel_efficiency.py --families avx2 --json

--small-layers instead times small SparseConv layers (the 1x1 and 3x3 convolutions of OCR models
on 24x96 maps and smaller, 80% sparse) on 1 and on 2 intra-op threads, beside ORT's dense Conv:
whether the thread pool's hand-offs cost such layers more than a second thread gives them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a file, Python puts only tools/ on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import ortsparse  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from ortsparse.calibration import (  # noqa: E402
    dense_conv_model,
    nanoseconds_per_run,
    random_weight,
    session,
    sparse_conv_model,
    sparse_model,
)
from ortsparse.isa import cpu_report  # noqa: E402
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter import rewrite_model  # noqa: E402

# kernel family -> (FP32 floats per vector, INT8 multiply-adds per 32-bit lane per instruction)
FAMILIES = {
    "avx2": (8, 2),
    "avxvnni": (8, 4),
    "avx512": (16, 2),
    "avx512vnni": (16, 4),
}
FAMILY_RANK = {"scalar": 0, "avx2": 1, "avxvnni": 2, "avx512": 3, "avx512vnni": 4}
FMAS_PER_CYCLE = 2
DENSITY = 0.1

# (label, rows M, K, N) for SparseGemm; (label, C, N, kernel, stride, H = W) for SparseConv.
GEMM_SHAPES = (
    ("BERT-base QKV 768x768, 128 rows", 128, 768, 768),
    ("BERT-base FFN 768x3072, 128 rows", 128, 768, 3072),
    ("MLP 1024x1024, 64 rows", 64, 1024, 1024),
)
CONV_SHAPES = (
    ("ResNet-50 3x3 64->64 at 56", 64, 64, 3, 1, 56),
    ("ResNet-50 3x3 256->256 at 14", 256, 256, 3, 1, 14),
    ("ResNet-50 1x1 256->64 at 56", 256, 64, 1, 1, 56),
    ("ResNet-50 1x1 1024->256 at 14", 1024, 256, 1, 1, 14),
)
INT8_SHAPES = (("BERT-base QKV 768x768, 128 rows", 128, 768, 768),)


@dataclass(frozen=True)
class Point:
    family: str
    op: str
    shape: str
    microseconds: float
    useful_macs: int
    per_ns: float  # FP32: vector FMAs per ns; INT8: multiply-adds per ns
    of_peak: float  # FP32: share of 2 vector FMAs per cycle; INT8: share of the lanes' capacity


def clock_ghz() -> float:
    """The clock /proc/cpuinfo reports, in GHz (0 where it reports none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 0.0


def time_alone(model: onnx.ModelProto, x: np.ndarray) -> float:
    """Nanoseconds per run of the model's one op on one thread (calibration's timing)."""
    (ns,) = nanoseconds_per_run([session(model, ortsparse.library_path())], x)
    return ns


def fp32_points(family: str, ghz: float, rng: np.random.Generator) -> list[Point]:
    lanes = FAMILIES[family][0]
    points = []
    for label, m, k, n in GEMM_SHAPES:
        weight = random_weight(k, n, DENSITY, 1, rng)
        ns = time_alone(sparse_model(weight, "csr"), rng.standard_normal((m, k), np.float32))
        points.append(
            fp32_point(
                family, "SparseGemm csr", label, ns, m * np.count_nonzero(weight), lanes, ghz
            )
        )
    for label, c, n, kernel, stride, size in CONV_SHAPES:
        matrix = random_weight(c * kernel * kernel, n, DENSITY, 1, rng)
        weight = np.ascontiguousarray(matrix.T.reshape(n, c, kernel, kernel))
        x = rng.standard_normal((1, c, size, size), np.float32)
        ns = time_alone(sparse_conv_model(weight, stride, "csr"), x)
        pixels = (-(-size // stride)) ** 2
        points.append(
            fp32_point(
                family, "SparseConv csr", label, ns, pixels * np.count_nonzero(weight), lanes, ghz
            )
        )
    return points


def fp32_point(family, op, label, ns, macs, lanes, ghz) -> Point:
    vector_fmas_per_ns = macs / lanes / ns
    of_peak = vector_fmas_per_ns / (FMAS_PER_CYCLE * ghz) if ghz else float("nan")
    return Point(family, op, label, ns / 1e3, int(macs), vector_fmas_per_ns, of_peak)


def int8_points(family: str, ghz: float, rng: np.random.Generator) -> list[Point]:
    lane_macs = FAMILIES[family][1]
    vector_lanes = FAMILIES[family][0]  # 32-bit lanes per vector: as many as floats
    points = []
    for label, m, k, n in INT8_SHAPES:
        keep = np.repeat(rng.random((k // 4, n)) < DENSITY, 4, axis=0)
        weight = (rng.integers(-127, 128, (k, n)) * keep).astype(np.int8)
        model = rewrite_model(qlinear_matmul_model(weight, m), min_sparsity=0.0).model
        x = rng.integers(0, 256, (m, k)).astype(np.uint8)
        ns = time_alone(model, x)
        macs = m * int(np.count_nonzero(keep))
        per_ns = macs / ns
        capacity = FMAS_PER_CYCLE * ghz * vector_lanes * lane_macs if ghz else float("nan")
        points.append(
            Point(family, "SparseQGemm quad4", label, ns / 1e3, macs, per_ns, per_ns / capacity)
        )
    return points


def qlinear_matmul_model(weight: np.ndarray, rows: int) -> onnx.ModelProto:
    k, n = weight.shape
    node = helper.make_node(
        "QLinearMatMul", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz"], ["Y"], name="qmm"
    )
    constants = {
        "xs": np.float32(0.05),
        "xz": np.uint8(128),
        "W": weight,
        "ws": np.float32(0.01),
        "wz": np.int8(0),
        "ys": np.float32(0.5),
        "yz": np.uint8(128),
    }
    graph = helper.make_graph(
        [node],
        "int8",
        [helper.make_tensor_value_info("X", onnx.TensorProto.UINT8, ["M", k])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.UINT8, ["M", n])],
        [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()],
    )
    return newest_model_versions().make_model(graph)


# (C, N, kernel, H, W): depthwise-separable networks' pointwise and small 3x3 layers.
SMALL_CONV_SHAPES = (
    (8, 8, 1, 24, 96),
    (16, 16, 1, 12, 48),
    (64, 64, 1, 6, 24),
    (32, 32, 3, 24, 96),
    (128, 128, 1, 12, 48),
)
SMALL_LAYER_RUNS = 2000


def small_layer_rows(rng: np.random.Generator) -> list[str]:
    """Microseconds per run of each small layer, ortsparse and ORT, on 1 and 2 threads."""
    rows = []
    for c, n, kernel, height, width in SMALL_CONV_SHAPES:
        matrix = random_weight(c * kernel * kernel, n, 0.2, 1, rng)
        weight = np.ascontiguousarray(matrix.T.reshape(n, c, kernel, kernel))
        x = rng.standard_normal((1, c, height, width), np.float32)
        times = {
            (name, threads): time_per_run(model, x, threads)
            for name, model in (
                ("ortsparse", sparse_conv_model(weight, 1, "csr")),
                ("ORT", dense_conv_model(weight, 1)),
            )
            for threads in (1, 2)
        }
        rows.append(
            f"{c}->{n} {kernel}x{kernel} at {height}x{width}: ortsparse "
            f"{times['ortsparse', 1]:.1f} us on 1 thread, {times['ortsparse', 2]:.1f} on 2; ORT "
            f"{times['ORT', 1]:.1f} and {times['ORT', 2]:.1f}"
        )
    return rows


def time_per_run(model: onnx.ModelProto, x: np.ndarray, threads: int) -> float:
    """Microseconds per run on ``threads`` intra-op threads, after as many warm-up runs."""
    runner = session(model, ortsparse.library_path(), threads)
    for _ in range(SMALL_LAYER_RUNS // 10):
        runner.run(None, {"X": x})
    start = time.perf_counter()
    for _ in range(SMALL_LAYER_RUNS):
        runner.run(None, {"X": x})
    return (time.perf_counter() - start) / SMALL_LAYER_RUNS * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--families",
        nargs="+",
        choices=sorted(FAMILIES),
        help="kernel families to measure (default: every one this CPU has, scalar aside)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--small-layers",
        action="store_true",
        help="time small convolutions on 1 and 2 threads instead (this CPU's own family)",
    )
    args = parser.parse_args(argv)
    if args.small_layers:
        print("\n".join(small_layer_rows(np.random.default_rng(0))))
        return 0
    report = cpu_report()
    best = FAMILY_RANK[report["best_kernel_family"]]
    families = args.families or [
        family
        for family in FAMILIES
        if FAMILY_RANK[family] <= best and (family != "avxvnni" or report["avx_vnni"])
    ]
    ghz = clock_ghz()
    points = []
    for family in families:
        os.environ["ORTSPARSE_ISA"] = family
        rng = np.random.default_rng(0)
        print(f"[efficiency] kernel family {family}", file=sys.stderr, flush=True)
        points += fp32_points(family, ghz, rng) + int8_points(family, ghz, rng)
    if args.json:
        print(json.dumps([asdict(point) for point in points], indent=2))
        return 0
    print(
        f"{report['model']} ({report['vendor']} family {report['family']} model "
        f"{report['model_number']}), {ghz:.2f} GHz by /proc/cpuinfo, one thread"
    )
    header = f"{'family':<11} {'op':<18} {'shape':<33} {'us':>8} {'per ns':>8} {'of peak':>8}"
    print(header)
    print("-" * len(header))
    for p in points:
        unit = "vFMA" if p.op.startswith("Sparse") and "Q" not in p.op else "MAC"
        print(
            f"{p.family:<11} {p.op:<18} {p.shape:<33} {p.microseconds:>8.1f} "
            f"{p.per_ns:>5.2f} {unit:<4}{p.of_peak:>7.0%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
