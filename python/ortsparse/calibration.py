"""`ortsparse calibrate`: measures the rewriter's cost model on this CPU.

Times, on one thread, ONNX Runtime's dense MatMul and ortsparse's SparseGemm (csr on unstructured
weights, block4 on 4-channel-block weights) at several shapes, densities and row counts M, in
single-node models; then fits the linear model of ortsparse/rewriter/cost_model.py by
non-negative least squares on relative errors. Dense MatMul is timed alternately with SparseGemm,
so that the two are compared under the same machine state.

The dense side's fit has a term per output besides the one per MAC. SparseConv is measured the
same way against ORT's dense Conv, on single-node convolutions of one image (3x3 stride 1 and 2,
1x1 read in place and packed, a 7x7 stem on 3 channels) at several channel counts, feature-map
sizes and densities (dense ones too); its fit counts the direct kernels' grid positions instead
of output pixels, adds a term per input plane element (cost_model.conv_work) and, where csr weights
run as compiled code (cost_model.runs_compiled), a nonzero term of its own and one per input
vector that the code loads (packing.count_compiled_input_loads), whose cost per stored weight
falls as a block's channels share more of them. At each shape both are also timed with a
SiLU after them (ORT's Conv, Sigmoid and Mul; SparseConv's activation silu, csr at density 0.2):
the extra time per output is fitted on each side.

``ortsparse calibrate`` measures the kernel family in use (about 40 s) and writes the data under
the cache directory, where the rewriter finds it for this CPU (rewriter/cost_data.py);
tools/measure_cost_model.py measures every family this CPU supports, for the data shipped with
ortsparse.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

import ortsparse
from ortsparse.model_versions import newest_model_versions
from ortsparse.rewriter.cost_data import (
    CpuIdentity,
    calibration_path,
    current_cpu,
    default_calibration_dir,
)
from ortsparse.rewriter.cost_model import (
    conv_work,
    current_kernel_family,
    fp32_kernel_family,
    runs_compiled,
)
from ortsparse.rewriter.packing import (
    PackedWeight,
    count_compiled_input_loads,
    count_stored_blocks,
    pack,
)
from ortsparse.rewriter.sparse_conv import SparseConv
from ortsparse.rewriter.sparse_gemm import SparseGemm
from ortsparse.rewriter.sparse_op import DOMAIN, NO_ACTIVATION, OPSET_VERSION, Activation

Progress = Callable[[str], None]

# Rows of X per call. The linear model is for batched calls; single rows (M=1) take the kernel's
# matrix-vector path, which a fit across M cannot describe as well.
ROWS = (16, 64, 256)
SHAPES = ((512, 512), (1024, 1024), (768, 3072))  # (K, N)
DENSITIES = (0.02, 0.05, 0.1, 0.2, 0.4)

# (C, N, kernel, stride, H = W) for one image, padded to keep the map size at stride 1: the
# ResNet-50 / YOLOv5s layer kinds, from large maps (packing-bound) to small ones.
CONV_SHAPES = (
    (64, 64, 3, 1, 56),
    (128, 128, 3, 1, 28),
    (256, 256, 3, 1, 14),
    (512, 512, 3, 1, 7),
    (64, 128, 3, 2, 56),
    (128, 256, 3, 2, 28),
    (256, 512, 1, 2, 28),
    (256, 64, 1, 1, 56),
    (512, 128, 1, 1, 28),
    (512, 512, 1, 1, 7),
    (1024, 256, 1, 1, 14),
    # Few channels on large maps, as in detectors' early stages.
    (32, 32, 1, 1, 160),
    (64, 32, 1, 1, 160),
    (64, 64, 1, 1, 80),
    (32, 32, 3, 1, 160),
    # A stem on the image's 3 channels, whose weights are seldom pruned.
    (3, 64, 7, 2, 224),
)
CONV_DENSITIES = (0.05, 0.2, 0.5, 1.0)
SILU_DENSITY = 0.2

ROUNDS = 7
SECONDS_PER_BATCH = 0.01
FLOAT = onnx.TensorProto.FLOAT
SPARSE_DOMAINS = [(DOMAIN, OPSET_VERSION)]


# --- timing ------------------------------------------------------------------------------------


def session(
    model: onnx.ModelProto, library: str | None = None, threads: int = 1
) -> ort.InferenceSession:
    """A session of ``model`` on ``threads`` intra-op threads (the cost model's: one)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
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
    node: onnx.NodeProto, initializers: list, k: int, n: int, domains: list = ()
) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node],
        "cost",
        [helper.make_tensor_value_info("X", FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", FLOAT, ["M", n])],
        initializers,
    )
    return newest_model_versions().make_model(graph, domains)


def dense_model(weight: np.ndarray) -> onnx.ModelProto:
    k, n = weight.shape
    node = helper.make_node("MatMul", ["X", "W"], ["Y"])
    return single_node_model(node, [numpy_helper.from_array(weight, "W")], k, n)


def sparse_model(weight: np.ndarray, format: str) -> onnx.ModelProto:
    packed = pack(weight, format)
    gemm = SparseGemm("gemm", "X", "values", "offsets", "indices", packed.k, packed.n, format, "Y")
    return single_node_model(
        gemm.to_node(), packed_initializers(packed), packed.k, packed.n, SPARSE_DOMAINS
    )


def packed_initializers(packed: PackedWeight) -> list:
    return [
        numpy_helper.from_array(packed.values, "values"),
        numpy_helper.from_array(packed.group_offsets, "offsets"),
        numpy_helper.from_array(packed.input_indices, "indices"),
    ]


def conv_model(nodes: list, initializers: list, c: int, domains: list = ()) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "cost",
        [helper.make_tensor_value_info("X", FLOAT, [1, c, None, None])],
        [helper.make_tensor_value_info("Y", FLOAT, None)],
        initializers,
    )
    return newest_model_versions().make_model(graph, domains)


def dense_conv_model(weight: np.ndarray, stride: int, silu: bool = False) -> onnx.ModelProto:
    _, c, kernel, _ = weight.shape
    pad = kernel // 2
    conv_output = "conv" if silu else "Y"
    nodes = [
        helper.make_node(
            "Conv",
            ["X", "W"],
            [conv_output],
            strides=[stride] * 2,
            pads=[pad] * 4,
            kernel_shape=[kernel] * 2,
        )
    ]
    if silu:
        nodes += [
            helper.make_node("Sigmoid", [conv_output], ["gate"]),
            helper.make_node("Mul", [conv_output, "gate"], ["Y"]),
        ]
    return conv_model(nodes, [numpy_helper.from_array(weight, "W")], c)


def sparse_conv_model(
    weight: np.ndarray, stride: int, format: str, silu: bool = False
) -> onnx.ModelProto:
    n, c, kernel, _ = weight.shape
    packed = pack(weight.reshape(n, -1).T, format)
    pad = kernel // 2
    conv = SparseConv(
        "conv",
        "X",
        "values",
        "offsets",
        "indices",
        packed.k,
        packed.n,
        format,
        "Y",
        c=c,
        kernel_shape=(kernel, kernel),
        strides=(stride, stride),
        pads=(pad,) * 4,
        activation=Activation("silu" if silu else NO_ACTIVATION),
    )
    return conv_model([conv.to_node()], packed_initializers(packed), c, SPARSE_DOMAINS)


def random_weight(
    k: int, n: int, density: float, block: int, rng: np.random.Generator
) -> np.ndarray:
    """Unstructured zeros (block 1) or whole zero runs of ``block`` output channels."""
    groups = -(-n // block)
    kept = rng.random((k, groups)) < density
    mask = np.repeat(kept, block, axis=1)[:, :n]
    return (rng.standard_normal((k, n)) * mask).astype(np.float32)


# --- measuring ---------------------------------------------------------------------------------


def measure(library: str, progress: Progress) -> tuple[list[dict], list[dict]]:
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


def measure_conv(library: str, progress: Progress) -> tuple[list[dict], list[dict]]:
    """measure() for SparseConv against ORT's Conv, one image per call: M = OH*OW output pixels,
    K = C*kH*kW, and each point records what SparseConv computes besides (conv_work)."""
    rng = np.random.default_rng(1)
    family = fp32_kernel_family(current_kernel_family())
    dense_points, sparse_points = [], []
    for c, n, kernel, stride, size in CONV_SHAPES:
        x = rng.standard_normal((1, c, size, size)).astype(np.float32)
        dense_weight = rng.standard_normal((n, c, kernel, kernel)).astype(np.float32)
        dense_session = session(dense_conv_model(dense_weight, stride))
        out = -(-size // stride)  # "same" pads: OH = ceil(H / s)
        m, k = out * out, c * kernel * kernel
        pads = (kernel // 2,) * 4
        work = conv_work((1, c, size, size), (out, out), (kernel,) * 2, (stride,) * 2, (1, 1), pads)
        fastest_dense = float("inf")
        for density, (format, block) in itertools.product(
            CONV_DENSITIES, (("csr", 1), ("block4", 4))
        ):
            matrix = random_weight(k, n, density, block, rng)
            weight = np.ascontiguousarray(matrix.T.reshape(n, c, kernel, kernel))
            sparse_session = session(sparse_conv_model(weight, stride, format), library)
            dense, sparse = nanoseconds_per_run([dense_session, sparse_session], x)
            fastest_dense = min(fastest_dense, dense)
            blocks = count_stored_blocks(matrix, format)
            compiled = format == "csr" and runs_compiled(family, work, k, n, blocks)
            sparse_points.append(
                {
                    "m": m,
                    "k": k,
                    "n": n,
                    "format": format,
                    "blocks": blocks,
                    "compiled_loads": count_compiled_input_loads(matrix) if compiled else None,
                    "positions": work.positions,
                    "plane_elements": work.plane_elements,
                    "ns": sparse,
                }
            )
            progress(
                f"conv {c}->{n} {kernel}x{kernel}/{stride} at {size}x{size} "
                f"{'compiled' if compiled else format:<8} density {density:<4}: "
                f"{sparse / 1e3:8.1f} us, dense {dense / 1e3:8.1f} us"
            )
        dense_points.append({"m": m, "k": k, "n": n, "ns": fastest_dense})

        # The same shape with a SiLU after it, on each side: the extra time per output.
        matrix = random_weight(k, n, SILU_DENSITY, 1, rng)
        weight = np.ascontiguousarray(matrix.T.reshape(n, c, kernel, kernel))
        sessions = [
            session(dense_conv_model(dense_weight, stride)),
            session(dense_conv_model(dense_weight, stride, silu=True)),
            session(sparse_conv_model(weight, stride, "csr"), library),
            session(sparse_conv_model(weight, stride, "csr", silu=True), library),
        ]
        dense, dense_silu, sparse, sparse_silu = nanoseconds_per_run(sessions, x)
        sparse_points.append(
            {
                "silu": True,
                "outputs": m * n,
                "dense_ns": dense_silu - dense,
                "sparse_ns": sparse_silu - sparse,
            }
        )
        progress(
            f"conv {c}->{n} {kernel}x{kernel}/{stride} at {size}x{size} SiLU after it: dense "
            f"+{(dense_silu - dense) / 1e3:.1f} us, sparse +{(sparse_silu - sparse) / 1e3:.1f} us"
        )
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
    features = np.array([[1.0, p["m"] * p["k"] * p["n"], p["m"] * p["n"]] for p in points])
    (per_call, per_mac, per_output), error = fit_non_negative(
        features, np.array([p["ns"] for p in points])
    )
    constants = {"dense_ns_per_call": per_call, "dense_ns_per_mac": per_mac}
    return {**constants, "dense_ns_per_output": per_output}, error


SPARSE_CONSTANTS = (
    "sparse_ns_per_call",
    "sparse_ns_per_output",
    "csr_ns_per_nonzero_row",
    "block4_ns_per_block_row",
)


def sparse_features(p: dict) -> list[float]:
    work = p.get("positions", p["m"]) * p["blocks"]
    return [
        1.0,
        p["m"] * p["n"],
        work if p["format"] == "csr" else 0.0,
        work if p["format"] == "block4" else 0.0,
    ]


def fit_sparse(points: list[dict]) -> tuple[dict, float]:
    features = np.array([sparse_features(p) for p in points])
    coefficients, error = fit_non_negative(features, np.array([p["ns"] for p in points]))
    return dict(zip(SPARSE_CONSTANTS, coefficients)), error


def conv_features(p: dict) -> list[float]:
    """sparse_features on the grid positions, with compiled code's weights apart from the tile
    kernels', plus the input plane elements and compiled code's input loads."""
    compiled = p["compiled_loads"] is not None
    features = sparse_features({**p, "blocks": 0 if compiled else p["blocks"]})
    compiled_work = [p["blocks"], p["compiled_loads"]] if compiled else [0, 0]
    return features + [p["plane_elements"]] + [p["positions"] * x for x in compiled_work]


def fit_sparse_conv(points: list[dict]) -> tuple[dict, float]:
    """fit_sparse on conv_features; and each side's time per output of a SiLU after the
    convolution (the "silu" points)."""
    conv_points = [p for p in points if not p.get("silu")]
    features = np.array([conv_features(p) for p in conv_points])
    coefficients, error = fit_non_negative(features, np.array([p["ns"] for p in conv_points]))
    names = SPARSE_CONSTANTS + (
        "sparse_ns_per_plane_element",
        "compiled_ns_per_nonzero_row",
        "compiled_ns_per_input_load_row",
    )
    constants = dict(zip(names, coefficients))
    # Least squares through zero, clipped at zero: an extra time is a difference of two noisy
    # ones, small beside them, and may come out negative.
    silu_points = [p for p in points if p.get("silu")]
    outputs = np.array([p["outputs"] for p in silu_points], dtype=np.float64)
    for side in ("dense", "sparse"):
        extra = np.array([p[f"{side}_ns"] for p in silu_points])
        per_output = float(outputs @ extra / (outputs @ outputs))
        constants[f"{side}_ns_per_silu_output"] = max(0.0, per_output)
    return constants, error


# --- one family ---------------------------------------------------------------------------------

# Per op: how it is measured and fitted, and its keys in the data file.
OPS = {
    "gemm": (measure, fit_sparse, "families", "max_relative_fit_error"),
    "conv": (measure_conv, fit_sparse_conv, "conv_families", "conv_max_relative_fit_error"),
}


def measure_and_fit(op: str, library: str, progress: Progress) -> dict:
    """``op``'s constants for the kernel family the provider runs now, and the fit's error."""
    measure_points, fit_sparse_points = OPS[op][:2]
    dense_points, sparse_points = measure_points(library, progress)
    dense, dense_error = fit_dense(dense_points)
    sparse, sparse_error = fit_sparse_points(sparse_points)
    return {
        "constants": {**dense, **sparse},
        "max_relative_error": {"dense": dense_error, "sparse": sparse_error},
    }


def new_data(cpu: CpuIdentity) -> dict:
    """A data file's header: the CPU, ORT's version and the date; no family measured yet."""
    return {
        "cpu": {
            "vendor": cpu.vendor,
            "family": cpu.family,
            "model_number": cpu.model_number,
            "best_kernel_family": cpu.best_kernel_family,
            "model": cpu.model,
        },
        "onnxruntime": ort.__version__,
        "threads": 1,
        "date": datetime.date.today().isoformat(),
        **{key: {} for _, _, *keys in OPS.values() for key in keys},
    }


def store_family(data: dict, op: str, family: str, measured: dict) -> None:
    families_key, errors_key = OPS[op][2:]
    data[families_key][family] = measured["constants"]
    data[errors_key][family] = measured["max_relative_error"]


# --- `ortsparse calibrate` ------------------------------------------------------------------------


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the measurement (default: this CPU's file in the calibration "
        f"directory, {default_calibration_dir()}, where the rewriter looks for it)",
    )
    parser.add_argument(
        "--library", help="the custom-op library (default: ortsparse.library_path())"
    )


def run_calibrate(args: argparse.Namespace) -> int:
    cpu = current_cpu()
    if cpu is None:
        print("error: the ortsparse ISA module is not built; install the package", file=sys.stderr)
        return 2
    family = fp32_kernel_family(current_kernel_family())
    output = args.output or calibration_path(cpu)
    library = args.library or ortsparse.library_path()
    progress = _progress
    progress(f"measuring {cpu.describe()}, kernel family {family}, on one thread (about 40 s)")
    data = new_data(cpu)
    started = time.perf_counter()
    for op in OPS:
        progress(f"{op}: ORT's dense op against ortsparse's, alternating")
        store_family(data, op, family, measure_and_fit(op, library, progress))
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.tmp")
    staging.write_text(json.dumps(data, indent=2) + "\n")
    staging.replace(output)
    progress(f"wrote {output} in {time.perf_counter() - started:.0f} s")
    return 0


def _progress(message: str) -> None:
    print(f"[calibrate] {message}", file=sys.stderr, flush=True)
