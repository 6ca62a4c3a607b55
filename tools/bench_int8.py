#!/usr/bin/env python3
"""ONNX Runtime vs ortsparse throughput on INT8 (QDQ) pruned ResNet-50 and BERT-base, side by side.

For every workload (model x sparsity x pruning pattern x batch) the FP32 model is built by
tools/model_builders, quantized to INT8 QDQ by tools/quantize_model.py (ORT's quantize_static,
s8 weights per output channel unless --per-tensor, calibrated on seeded random inputs), and the
quantized model is rewritten with ortsparse. The FP32 and INT8 models are kept in --model-dir and
reused on later runs; the rewrite is always made afresh, so that a changed rewriter is measured.
Stock ORT runs the quantized model, ortsparse runs its rewrite: the machinery of
tools/bench_gemm.py, ORT_ENABLE_ALL and --threads intra-op threads for both, timed in alternating
0.25 s slices (--time seconds each in all). Items are images for ResNet-50 and sequences for BERT.
The "rewritten" column counts the MatMul/Gemm/Conv nodes of the INT8 model that became ortsparse
ops; where the rewriter handles none of them the two sessions run the same graph and the ratio is
about 1.

Patterns: sparsity 0 is the dense model; at other sparsities --block 1 prunes unstructured, 4 in
blocks of 4 output channels, and 4k in blocks of 4 consecutive input features of one output
channel (for a conv, 4 input channels at one kernel tap): the quads SparseQGemm stores, which one
VNNI instruction multiplies.

Agreement: both models end in a DequantizeLinear, so outputs are multiples of its scale (one
quantization step) and the first run of each pair compares them in those steps, reporting the
largest difference and the share of outputs that differ at all (0 for a bit-exact rewrite, which
SparseQGemm is). A correct rewrite may still requantize some values 1 step away from ORT's fused
kernels, and a deep network carries such steps on: ORT's own float path for the same INT8 models
(ORT_DISABLE_ALL: DequantizeLinear, float op, QuantizeLinear) differs from its fused integer path
by up to 8 steps on BERT-base and 3 on ResNet-50 (this benchmark's per-channel u8 models, 3
inputs each). Above MAX_DIFF_STEPS = 10 a loud warning is printed and the exit status is 1. That
catches errors made in every layer (quads in the wrong order, a wrong zero point: 50 to 150 steps
on BERT-base, whose outputs span about 250), not one wrong layer, which BERT's residual LayerNorms
damp to a few steps: the op tests (tests/test_sparse_qgemm_op.py) check each kernel bit for bit.
On a CPU where ORT's own INT8 products are not exact (without VNNI its u8 x s8 kernels saturate;
ort_int8_is_exact probes it), ORT is no reference: the column says "ORT inexact here" with the
steps it measured, and they do not decide the exit status.

There is no --deepsparse here: DeepSparse 1.8 refuses the quantized models (quantize_static stamps
them with the ai.onnx.ml opset 5, newer than its embedded ONNX Runtime accepts).

    python tools/bench_int8.py        # both models, dense / 90% unstructured / 90% 4-block (K)
    python tools/bench_int8.py --models bert --block 1 4 4k --batch 1 8 --time 3 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a file, Python puts only tools/ on sys.path; the helpers import as tools.*.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from ortsparse.model_versions import newest_model_versions

from tools.bench_gemm import (  # noqa: E402
    RewrittenModel,
    Timing,
    add_measurement_options,
    interleaved_items_per_second,
    make_feed,
    make_session,
    original_model_path,
    progress,
    rewrite_for,
)
from tools.model_builders import BertConfig, ResNetConfig, build_bert, build_resnet  # noqa: E402
from tools.model_builders.cli import block_pattern  # noqa: E402
from tools.model_builders.pruning import BLOCKS, INPUT_BLOCK4, OUTPUT_BLOCK4  # noqa: E402
from tools.quantize_model import quantize_model  # noqa: E402

MAX_DIFF_STEPS = 10
PATTERN_NAMES = {1: "unstructured", OUTPUT_BLOCK4: "4-block (out)", INPUT_BLOCK4: "4-block (K)"}


@dataclass(frozen=True)
class Quantization:
    per_channel: bool
    activation_type: str  # "u8" or "s8"
    calibration_samples: int

    @property
    def label(self) -> str:
        weights = "per-channel" if self.per_channel else "per-tensor"
        return f"INT8 QDQ, s8 weights {weights}, {self.activation_type} activations"


@dataclass(frozen=True)
class Int8Workload:
    model: str  # "resnet50" or "bert"
    batch: int
    sparsity: float
    block: int | str  # 1 for the dense model, which it does not affect
    quantization: Quantization
    resolution: int  # ResNet-50 only
    seq: int  # BERT only
    layers: int  # BERT only

    @property
    def label(self) -> str:
        if self.model == "resnet50":
            shape = f"resnet50 {self.resolution}px batch {self.batch}"
        else:
            shape = f"bert {self.layers}L seq {self.seq} batch {self.batch}"
        if self.sparsity == 0:
            return f"{shape}, dense"
        return f"{shape}, {self.sparsity:.0%} {PATTERN_NAMES[self.block]}"

    def model_file_name(self, seed: int) -> str:
        # The names tools/bench_conv.py and tools/bench_gemm.py give the same FP32 models, so that
        # one --model-dir serves all three benchmarks.
        pruning = f"s{self.sparsity:g}_b{self.block}_seed{seed}"
        if self.model == "resnet50":
            return f"resnet50_r{self.resolution}_{pruning}.onnx"
        return f"bert_{self.layers}l_{pruning}.onnx"

    def quantized_file_name(self, seed: int) -> str:
        q = self.quantization
        weights = "pc" if q.per_channel else "pt"
        # BERT's sequence length is symbolic, but its calibration scales come from this one.
        calibration = f"cal{q.calibration_samples}"
        if self.model == "bert":
            calibration += f"x{self.seq}"
        stem = Path(self.model_file_name(seed)).stem
        return f"{stem}.int8_qdq_{weights}_{q.activation_type}_{calibration}.onnx"

    def calibration_dims(self) -> dict[str, int]:
        return {"sequence": self.seq} if self.model == "bert" else {}

    def build(self, seed: int) -> onnx.ModelProto:
        pruning = {"sparsity": self.sparsity, "block": self.block, "seed": seed}
        if self.model == "resnet50":
            return build_resnet(ResNetConfig(resolution=self.resolution, **pruning))
        return build_bert(BertConfig(layers=self.layers, **pruning))

    def input_shape(self, declared: list[int | str]) -> tuple[int, ...]:
        if self.model == "bert":
            return (self.batch, self.seq, declared[-1])
        return (self.batch, *declared[1:])  # only the batch is symbolic


@dataclass
class Int8Result:
    workload: str
    model: str
    batch: int
    input_shape: list[int]
    sparsity: float
    block: int | str
    quantization: str
    threads: int
    ort_items_per_s: float
    ortsparse_items_per_s: float
    ratio: float
    outputs_match: bool
    ort_exact: bool  # whether ORT's INT8 products are exact on this CPU, so that it is a reference
    max_diff_steps: int  # max |Y_ortsparse - Y_ort| in quantization steps of the output
    differing_share: float  # fraction of output values that differ from ORT's
    rewritten_nodes: int
    candidate_nodes: int


def quantized_model_path(workload: Int8Workload, original: Path, seed: int) -> Path:
    """The INT8 QDQ model of `original`, next to it, quantized only if it is not there yet."""
    path = original.with_name(workload.quantized_file_name(seed))
    if path.exists():
        progress(f"reusing {path}")
        return path
    progress(f"quantizing {original.name} -> {path}")
    q = workload.quantization
    # Written under a temporary name first: an interrupted run must not leave a half-written
    # model that the next run would reuse.
    partial = path.with_suffix(".partial.onnx")
    quantize_model(
        original,
        partial,
        per_channel=q.per_channel,
        activation_type=q.activation_type,
        samples=q.calibration_samples,
        dims=workload.calibration_dims(),
        seed=seed,
    )
    partial.rename(path)
    return path


def output_step(model_path: Path) -> float:
    """The quantization step (scale) of the model's first output, which must come from a
    per-tensor DequantizeLinear with a constant scale, as quantize_static writes it."""
    model = onnx.load(str(model_path), load_external_data=False)
    output = model.graph.output[0].name
    producer = next((node for node in model.graph.node if output in node.output), None)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    if producer is None or producer.op_type != "DequantizeLinear":
        raise ValueError(f"{model_path}: output '{output}' does not come from a DequantizeLinear")
    scale = initializers.get(producer.input[1])
    if scale is None or numpy_helper.to_array(scale).size != 1:
        raise ValueError(f"{model_path}: output '{output}' has no constant per-tensor scale")
    return float(numpy_helper.to_array(scale).reshape(()))


@dataclass(frozen=True)
class Agreement:
    max_steps: int
    differing_share: float
    ort_exact: bool = True  # ORT's integer products are exact on this CPU (ort_int8_is_exact)

    @property
    def matches(self) -> bool:
        """Within MAX_DIFF_STEPS of ORT, or ORT not exact here (then it is no reference)."""
        return self.max_steps <= MAX_DIFF_STEPS or not self.ort_exact


@functools.cache
def ort_int8_is_exact() -> bool:
    """Whether ORT's u8 x s8 products are exact on this CPU: a MatMulInteger whose adjacent
    products sum past int16's range against numpy. Without VNNI, MLAS adds pairs of products in
    int16 with saturation, and ORT's quantized models compute something else than their
    arithmetic says (ortsparse computes it exactly)."""
    x = np.full((8, 64), 255, np.uint8)
    w = np.full((64, 16), 127, np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", onnx.TensorProto.UINT8, x.shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = newest_model_versions().make_model(graph)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    return bool(np.array_equal(y, x.astype(np.int64) @ w.astype(np.int64)))


def agreement(reference: np.ndarray, candidate: np.ndarray, step: float) -> Agreement:
    """|candidate - reference| in units of `step`, each rounded to a whole number of steps (both
    are multiples of it up to float error): the largest, and the share that is not 0."""
    steps = np.rint(np.abs(candidate.astype(np.float64) - reference) / step)
    return Agreement(int(steps.max()), float(np.count_nonzero(steps)) / steps.size)


def compare_outputs_in_steps(
    ort_session: ort.InferenceSession,
    sparse_session: ort.InferenceSession,
    feed: dict[str, np.ndarray],
    step: float,
    label: str,
) -> Agreement:
    result = agreement(ort_session.run(None, feed)[0], sparse_session.run(None, feed)[0], step)
    result = dataclasses.replace(result, ort_exact=ort_int8_is_exact())
    if not result.matches:
        print(
            f"!!!!! WARNING: OUTPUTS DIFFER for {label}: max |diff| = {result.max_steps} "
            f"quantization steps of the output (bound {MAX_DIFF_STEPS}) !!!!!",
            file=sys.stderr,
            flush=True,
        )
    return result


def benchmark_workload(
    workload: Int8Workload, quantized: Path, rewritten: RewrittenModel, timing: Timing
) -> Int8Result:
    ort_session = make_session(quantized, timing.threads, with_ortsparse=False)
    sparse_session = make_session(rewritten.path, timing.threads, with_ortsparse=True)
    feed = make_feed(quantized, workload, timing.seed)
    outputs = compare_outputs_in_steps(
        ort_session, sparse_session, feed, output_step(quantized), workload.label
    )
    progress(f"timing {workload.label}: ORT and ortsparse, {timing.seconds:g} s each")
    ort_rate, sparse_rate = interleaved_items_per_second(
        [ort_session, sparse_session], feed, workload.batch, timing
    )
    return Int8Result(
        workload=workload.label,
        model=workload.model,
        batch=workload.batch,
        input_shape=list(next(iter(feed.values())).shape),
        sparsity=workload.sparsity,
        block=workload.block,
        quantization=workload.quantization.label,
        threads=timing.threads,
        ort_items_per_s=ort_rate,
        ortsparse_items_per_s=sparse_rate,
        ratio=sparse_rate / ort_rate,
        outputs_match=outputs.matches,
        ort_exact=outputs.ort_exact,
        max_diff_steps=outputs.max_steps,
        differing_share=outputs.differing_share,
        rewritten_nodes=rewritten.rewritten_nodes,
        candidate_nodes=rewritten.candidate_nodes,
    )


def workloads_from(args: argparse.Namespace) -> list[Int8Workload]:
    quantization = Quantization(
        per_channel=not args.per_tensor,
        activation_type=args.activation_type,
        calibration_samples=args.calibration_samples,
    )
    # The dense model is one workload, whatever the patterns.
    prunings = list(
        dict.fromkeys(
            (sparsity, block if sparsity > 0 else 1)
            for sparsity in args.sparsity
            for block in args.block
        )
    )
    return [
        Int8Workload(
            model,
            batch,
            sparsity,
            block,
            quantization,
            args.resnet_resolution,
            args.bert_seq,
            args.bert_layers,
        )
        for model in args.models
        for sparsity, block in prunings
        for batch in args.batch
    ]


def run_benchmarks(
    workloads: list[Int8Workload], args: argparse.Namespace, model_dir: Path
) -> list[Int8Result]:
    """Benchmarks every workload, building, quantizing and rewriting each model once."""
    timing = Timing(args.threads, args.time, args.warmup, args.seed)
    rewrites: dict[tuple, RewrittenModel] = {}
    results = []
    for index, workload in enumerate(workloads, 1):
        progress(f"[{index}/{len(workloads)}] {workload.label}")
        original = original_model_path(workload, model_dir, args.seed)
        quantized = quantized_model_path(workload, original, args.seed)
        # Verified rewrites are made for each input shape (the batch size may change them).
        key = (quantized, None if args.no_verify else workload.label)
        if key not in rewrites:
            rewrites[key] = rewrite_for(workload, quantized, args)
        results.append(benchmark_workload(workload, quantized, rewrites[key], timing))
    return results


def format_table(results: list[Int8Result]) -> str:
    header = (
        f"{'workload':<44} {'ORT items/s':>12} {'ortsparse items/s':>18} {'ratio':>7}  "
        f"{'rewritten':>9}  outputs vs ORT"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        rates = f"{r.ort_items_per_s:>12.1f} {r.ortsparse_items_per_s:>18.1f} {r.ratio:>6.2f}x"
        rewritten = f"{r.rewritten_nodes}/{r.candidate_nodes}"
        verdict = (
            ("match" if r.max_diff_steps <= MAX_DIFF_STEPS else "DIFFER")
            if r.ort_exact
            else "ORT inexact here"
        )
        check = f"{verdict}: max {r.max_diff_steps} steps, {r.differing_share:.1%} differ"
        lines.append(f"{r.workload:<44} {rates}  {rewritten:>9}  {check}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("resnet50", "bert"),
        default=["resnet50", "bert"],
        help="models to run (default: resnet50 bert)",
    )
    parser.add_argument(
        "--sparsity",
        nargs="+",
        type=float,
        default=[0.0, 0.9],
        help="weight sparsities; 0 is the dense model, run once whatever --block says "
        "(default 0 0.9)",
    )
    parser.add_argument(
        "--block",
        nargs="+",
        type=block_pattern,
        choices=BLOCKS,
        default=[1, INPUT_BLOCK4],
        help="pruning patterns at each nonzero sparsity: 1 unstructured, 4 blocks of 4 output "
        "channels at one input index, 4k blocks of 4 consecutive input features of one output "
        "channel (of a conv: 4 input channels at one kernel tap) (default 1 4k)",
    )
    parser.add_argument("--batch", nargs="+", type=int, default=[1], help="batch sizes (default 1)")
    parser.add_argument(
        "--resnet-resolution",
        type=int,
        default=ResNetConfig.resolution,
        help="ResNet-50 input size (default 224)",
    )
    parser.add_argument(
        "--bert-seq",
        type=int,
        default=128,
        help="BERT sequence length, of the calibration data too (default 128)",
    )
    parser.add_argument(
        "--bert-layers", type=int, default=BertConfig.layers, help="BERT-base layers (default 12)"
    )
    parser.add_argument(
        "--per-tensor",
        action="store_true",
        help="one scale per weight tensor (default: one per output channel, what quantized "
        "models usually have)",
    )
    parser.add_argument(
        "--activation-type",
        choices=("u8", "s8"),
        default="u8",
        help="activation type (default u8, ORT's default and what VNNI multiplies natively)",
    )
    parser.add_argument(
        "--calibration-samples",
        type=int,
        default=8,
        metavar="N",
        help="random calibration feeds of the quantizer (default 8)",
    )
    add_measurement_options(parser, deepsparse=False)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = workloads_from(args)
    with tempfile.TemporaryDirectory(prefix="ortsparse-bench-int8-") as scratch:
        model_dir = args.model_dir or Path(scratch)
        model_dir.mkdir(parents=True, exist_ok=True)
        results = run_benchmarks(workloads, args, model_dir)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(f"{workloads[0].quantization.label}, {args.threads} threads")
        print(format_table(results))
    return 0 if all(r.outputs_match for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
