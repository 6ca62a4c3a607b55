#!/usr/bin/env python3
"""ONNX Runtime vs ortsparse throughput on pruned MLP and BERT models, side by side.

For every workload (model x batch x sparsity x pruning pattern) one original model file is built
(or reused from --model-dir) and rewritten with ortsparse. Stock ORT runs the original, ortsparse
runs the rewritten one; both sessions use ORT_ENABLE_ALL graph optimizations and --threads intra-op
threads, and are timed in alternating 0.25 s slices (--time seconds each in all) so that load from
other processes hits both alike. The first run of each pair checks that the outputs agree
(max |diff| <= 1e-3 * max |Y_ort|); if not, a loud warning is printed and the exit status is 1.
Items are rows for the MLP and sequences for BERT. With --deepsparse, DeepSparse 1.8 (its own
virtual environment, tools/setup_deepsparse.sh) also runs the original model, in a subprocess
right after the pair, for --time seconds; so that it can, the original models are written at
IR version 8 and opset 17 (DEEPSPARSE_VERSIONS), not at the newest the installed onnxruntime
runs as the model builders' own default is. The rewriter's cost model decides which nodes to
rewrite unless --min-sparsity overrides it; the "rewritten" column says how many MatMul/Gemm nodes
became SparseGemm.

    python tools/bench_gemm.py        # MLP batch 1 and 64, BERT seq 128 batch 1, 90% unstructured
    python tools/bench_gemm.py --sparsity 0.8 0.95 --block 1 4 --threads 2 --time 3 --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

# Run as a file, Python puts only tools/ on sys.path; the builders import as tools.model_builders.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import ortsparse  # noqa: E402
from ortsparse.inputs import model_input_specs, random_inputs  # noqa: E402
from ortsparse.model_versions import ModelVersions  # noqa: E402
from ortsparse.rewriter import rewrite_model  # noqa: E402
from ortsparse.verification import verify_rewrite  # noqa: E402

from tools.model_builders import BertConfig, MlpConfig, build_bert, build_mlp  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEEPSPARSE_RUNNER = REPO_ROOT / "tools" / "deepsparse_throughput.py"
DEFAULT_DEEPSPARSE_PYTHON = REPO_ROOT / ".venv-deepsparse" / "bin" / "python"
# DeepSparse 1.8's onnx (1.14) reads IR versions up to 9 and opsets up to 19.
DEEPSPARSE_VERSIONS = ModelVersions(ir_version=8, opset=17)
OUTPUT_RTOL = 1e-3
SLICE_SECONDS = 0.25


def pruning_label(sparsity: float, block: int) -> str:
    return f"{sparsity:.0%} {'4-block' if block == 4 else 'unstructured'}"


class ModelWorkload(Protocol):
    """What the benchmark machinery below needs of a workload: this file's Workload, and
    tools/bench_conv.py's, which reuses the machinery for convolutional networks."""

    model: str
    batch: int
    sparsity: float
    block: int

    @property
    def label(self) -> str: ...

    def model_file_name(self, seed: int) -> str: ...

    def build(self, seed: int) -> onnx.ModelProto: ...

    def input_shape(self, declared: list[int | str]) -> tuple[int, ...]:
        """The shape to feed, given the model input's declared one (symbols as strings)."""


@dataclass(frozen=True)
class Workload:
    model: str  # "mlp" or "bert"
    batch: int
    seq: int | None  # BERT only
    sparsity: float
    block: int  # 1: unstructured, 4: 4-block pruning
    layers: int
    gelu: str = "erf"  # BERT only: BertConfig.gelu
    graph: str = "torch"  # BERT only: BertConfig.graph

    @property
    def label(self) -> str:
        shape = f"batch {self.batch}" + (f" seq {self.seq}" if self.seq else "")
        pruning = pruning_label(self.sparsity, self.block)
        variant = self._variant(", contrib Gelu", ", ")
        return f"{self.model} {self.layers}L {shape}{variant}, {pruning}"

    def model_file_name(self, seed: int) -> str:
        # Batch and sequence length are symbolic in the model, so workloads differing only in
        # them share one file.
        variant = self._variant("_contrib", "_")
        return (
            f"{self.model}_{self.layers}l{variant}_s{self.sparsity:g}_b{self.block}_seed{seed}.onnx"
        )

    def _variant(self, contrib_gelu: str, graph_prefix: str) -> str:
        """What sets a BERT apart from the default torch graph with erf GELU, as a name part."""
        if self.model != "bert":
            return ""
        if self.graph != "torch":
            return f"{graph_prefix}{self.graph}"
        return contrib_gelu if self.gelu == "contrib" else ""

    def build(self, seed: int) -> onnx.ModelProto:
        # Written at versions DeepSparse reads, so that it can run the same file.
        common = {
            "sparsity": self.sparsity,
            "block": self.block,
            "seed": seed,
            "versions": DEEPSPARSE_VERSIONS,
        }
        if self.model == "mlp":
            return build_mlp(MlpConfig(layers=self.layers, **common))
        config = BertConfig(layers=self.layers, gelu=self.gelu, graph=self.graph, **common)
        return build_bert(config)

    def input_shape(self, declared: list[int | str]) -> tuple[int, ...]:
        hidden = declared[-1]
        return (self.batch, self.seq, hidden) if self.model == "bert" else (self.batch, hidden)


@dataclass(frozen=True)
class Timing:
    threads: int
    seconds: float  # per measurement
    warmup: int  # untimed runs before each measurement
    seed: int  # of the input


@dataclass
class Result:
    workload: str
    model: str
    batch: int
    input_shape: list[int]
    sparsity: float
    block: int
    threads: int
    ort_items_per_s: float
    ortsparse_items_per_s: float
    ratio: float
    outputs_match: bool
    max_rel_error: float
    rewritten_nodes: int
    candidate_nodes: int
    deepsparse_items_per_s: float | None = None


def progress(message: str) -> None:
    print(f"[progress] {message}", file=sys.stderr, flush=True)


def original_model_path(workload: ModelWorkload, model_dir: Path, seed: int) -> Path:
    """The workload's pruned model in model_dir, built only if it is not there yet."""
    path = model_dir / workload.model_file_name(seed)
    if path.exists():
        progress(f"reusing {path}")
        return path
    progress(f"building {workload.model} ({workload.sparsity:.0%}) -> {path}")
    onnx.save(workload.build(seed), str(path))
    return path


@dataclass(frozen=True)
class RewrittenModel:
    path: Path
    rewritten_nodes: int  # MatMul/Gemm/Conv nodes that became SparseGemm/SparseConv
    candidate_nodes: int  # MatMul/Gemm/Conv nodes the rewriter looked at


def rewrite(
    original: Path,
    min_sparsity: float | None,
    verify_threads: int | None = None,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
) -> RewrittenModel:
    """Rewrites `original` next to it, always afresh so that a changed rewriter is measured, for
    inputs of ``input_shapes`` (the sizes its symbolic dims run at), and verified against ORT on
    ``verify_threads`` threads as rewrite-model does (ortsparse.verification), unless
    ``verify_threads`` is None."""
    path = original.with_name(original.stem + ".ortsparse.onnx")
    progress(f"rewriting {original.name}")
    model = onnx.load(str(original))

    def rewrite_keeping(keep, convert):
        return rewrite_model(
            model,
            min_sparsity=min_sparsity,
            progress=lambda message: progress(f"  {message}"),
            keep=keep,
            input_shapes=input_shapes,
            convert=convert,
        )

    if verify_threads is None:
        result = rewrite_keeping({}, ())
    else:
        result = verify_rewrite(
            model,
            rewrite_keeping,
            threads=verify_threads,
            input_shapes=input_shapes,
            progress=lambda message: progress(f"  verify: {message}"),
        )
    onnx.save(result.model, str(path))
    return RewrittenModel(path, result.rewritten_count, len(result.decisions))


def rewrite_for(
    workload: ModelWorkload, original: Path, args: argparse.Namespace
) -> RewrittenModel:
    """rewrite for ``workload`` at its input shape, verified on the run's threads unless
    --no-verify."""
    specs = model_input_specs(onnx.load(str(original), load_external_data=False))
    shapes = {spec.name: workload.input_shape(list(spec.shape)) for spec in specs}
    return rewrite(original, args.min_sparsity, None if args.no_verify else args.threads, shapes)


def make_session(path: Path, threads: int, with_ortsparse: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if with_ortsparse:
        options.register_custom_ops_library(ortsparse.library_path())
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def make_feed(model: Path, workload: ModelWorkload, seed: int) -> dict[str, np.ndarray]:
    """Random data for every input of `model` (ortsparse.inputs.random_inputs: floats standard
    normal, integers 0 or 1) at the workload's shape."""
    specs = model_input_specs(onnx.load(str(model), load_external_data=False))
    shapes = {spec.name: workload.input_shape(list(spec.shape)) for spec in specs}
    return dict(zip(shapes, random_inputs(specs, shapes, seed)))


def max_relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """max |candidate - reference| relative to max |reference|."""
    scale = max(float(np.max(np.abs(reference))), np.finfo(np.float32).tiny)
    return float(np.max(np.abs(candidate - reference))) / scale


def _timed_runs(
    session: ort.InferenceSession, feed: dict[str, np.ndarray], seconds: float
) -> tuple[int, float]:
    """Runs `session` for at least `seconds` (and at least once); returns (runs, elapsed)."""
    runs, start = 0, time.perf_counter()
    while True:
        session.run(None, feed)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return runs, elapsed


def interleaved_items_per_second(
    sessions: list[ort.InferenceSession],
    feed: dict[str, np.ndarray],
    items_per_run: int,
    timing: Timing,
) -> list[float]:
    """Throughput of each session, measured in alternating slices of SLICE_SECONDS so that load
    from other processes on a shared machine falls on all of them alike."""
    for session in sessions:
        for _ in range(timing.warmup):
            session.run(None, feed)
    runs, elapsed = [0] * len(sessions), [0.0] * len(sessions)
    for _ in range(max(1, round(timing.seconds / SLICE_SECONDS))):
        for index, session in enumerate(sessions):
            slice_runs, slice_elapsed = _timed_runs(session, feed, SLICE_SECONDS)
            runs[index] += slice_runs
            elapsed[index] += slice_elapsed
    return [count * items_per_run / total for count, total in zip(runs, elapsed)]


def compare_first_outputs(
    ort_session: ort.InferenceSession,
    sparse_session: ort.InferenceSession,
    feed: dict[str, np.ndarray],
    label: str,
) -> tuple[bool, float]:
    error = max_relative_error(ort_session.run(None, feed)[0], sparse_session.run(None, feed)[0])
    matches = error <= OUTPUT_RTOL
    if not matches:
        print(
            f"!!!!! WARNING: OUTPUTS DIFFER for {label}: max |diff| = {error:.3g} x max |Y_ort| "
            f"(tolerance {OUTPUT_RTOL:g}) !!!!!",
            file=sys.stderr,
            flush=True,
        )
    return matches, error


def deepsparse_items_per_second(
    deepsparse_python: Path, original: Path, feed: dict[str, np.ndarray], timing: Timing
) -> float | None:
    """DeepSparse's throughput on `original`, measured by tools/deepsparse_throughput.py; None
    (and why, on stderr) where DeepSparse cannot run it."""
    batch = next(iter(feed.values())).shape[0]
    shapes = [list(array.shape) for array in feed.values()]
    command = [
        str(deepsparse_python),
        str(DEEPSPARSE_RUNNER),
        str(original),
        f"--batch={batch}",
        f"--threads={timing.threads}",
        f"--time={timing.seconds}",
        f"--input-shapes={json.dumps(shapes)}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        error_lines = completed.stderr.strip().splitlines() or ["(no message)"]
        progress(f"DeepSparse could not run {original.name}: {error_lines[-1]}")
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])["items_per_second"]


def benchmark_workload(
    workload: ModelWorkload,
    original: Path,
    rewritten: RewrittenModel,
    timing: Timing,
    deepsparse_python: Path | None = None,
) -> Result:
    ort_session = make_session(original, timing.threads, with_ortsparse=False)
    sparse_session = make_session(rewritten.path, timing.threads, with_ortsparse=True)
    feed = make_feed(original, workload, timing.seed)
    matches, error = compare_first_outputs(ort_session, sparse_session, feed, workload.label)
    progress(f"timing {workload.label}: ORT and ortsparse, {timing.seconds:g} s each")
    ort_rate, sparse_rate = interleaved_items_per_second(
        [ort_session, sparse_session], feed, workload.batch, timing
    )
    deepsparse_rate = None
    if deepsparse_python is not None:
        progress(f"timing {workload.label}: DeepSparse, {timing.seconds:g} s")
        deepsparse_rate = deepsparse_items_per_second(deepsparse_python, original, feed, timing)
    return Result(
        workload=workload.label,
        model=workload.model,
        batch=workload.batch,
        input_shape=list(next(iter(feed.values())).shape),
        sparsity=workload.sparsity,
        block=workload.block,
        threads=timing.threads,
        ort_items_per_s=ort_rate,
        ortsparse_items_per_s=sparse_rate,
        ratio=sparse_rate / ort_rate,
        outputs_match=matches,
        max_rel_error=error,
        rewritten_nodes=rewritten.rewritten_nodes,
        candidate_nodes=rewritten.candidate_nodes,
        deepsparse_items_per_s=deepsparse_rate,
    )


def workloads_from(args: argparse.Namespace) -> list[Workload]:
    workloads = []
    for sparsity in args.sparsity:
        for block in args.block:
            if "mlp" in args.models:
                workloads += [
                    Workload("mlp", batch, None, sparsity, block, args.mlp_layers)
                    for batch in args.mlp_batch
                ]
            if "bert" in args.models:
                workloads.append(
                    Workload(
                        "bert",
                        args.bert_batch,
                        args.bert_seq,
                        sparsity,
                        block,
                        args.bert_layers,
                        args.bert_gelu,
                        args.bert_graph,
                    )
                )
    return workloads


def run_benchmarks(
    workloads: list[ModelWorkload], args: argparse.Namespace, model_dir: Path
) -> list[Result]:
    """Benchmarks every workload, building each model file and its rewrite once."""
    timing = Timing(args.threads, args.time, args.warmup, args.seed)
    rewrites: dict[tuple, RewrittenModel] = {}
    results = []
    for workload in workloads:
        original = original_model_path(workload, model_dir, args.seed)
        # Verified rewrites are made for each input shape (the batch size may change them).
        key = (original, None if args.no_verify else workload.label)
        if key not in rewrites:
            rewrites[key] = rewrite_for(workload, original, args)
        results.append(
            benchmark_workload(workload, original, rewrites[key], timing, args.deepsparse)
        )
    return results


def format_table(results: list[Result], with_deepsparse: bool = False) -> str:
    deepsparse_header = f" {'DeepSparse items/s':>18} {'DS/ORT':>7}" if with_deepsparse else ""
    header = (
        f"{'workload':<44} {'ORT items/s':>12} {'ortsparse items/s':>18} {'ratio':>7}"
        f"{deepsparse_header}  {'rewritten':>9}  outputs"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        rates = f"{r.ort_items_per_s:>12.1f} {r.ortsparse_items_per_s:>18.1f} {r.ratio:>6.2f}x"
        if with_deepsparse:
            if r.deepsparse_items_per_s is None:
                rates += f" {'-':>18} {'-':>7}"
            else:
                deepsparse_rate = r.deepsparse_items_per_s
                rates += f" {deepsparse_rate:>18.1f} {deepsparse_rate / r.ort_items_per_s:>6.2f}x"
        rewritten = f"{r.rewritten_nodes}/{r.candidate_nodes}"
        check = "match" if r.outputs_match else f"DIFFER ({r.max_rel_error:.2g})"
        lines.append(f"{r.workload:<44} {rates}  {rewritten:>9}  {check}")
    return "\n".join(lines)


def add_pruning_options(
    parser: argparse.ArgumentParser, sparsities: list[float], blocks: list[int]
) -> None:
    """--sparsity and --block, whose every combination is benchmarked."""
    parser.add_argument(
        "--sparsity",
        nargs="+",
        type=float,
        default=sparsities,
        help=f"weight sparsities (default {' '.join(f'{s:g}' for s in sparsities)})",
    )
    parser.add_argument(
        "--block",
        nargs="+",
        type=int,
        choices=(1, 4),
        default=blocks,
        help="pruning patterns: 1 unstructured, 4 4-block "
        f"(default {' '.join(str(b) for b in blocks)})",
    )


def add_measurement_options(parser: argparse.ArgumentParser, deepsparse: bool = True) -> None:
    """Options of timing, rewriting and output that every benchmark of this kind shares;
    --deepsparse only where DeepSparse can run the benchmark's models."""
    parser.add_argument(
        "--threads", type=int, default=2, help="intra-op threads for both (default 2)"
    )
    parser.add_argument(
        "--time", type=float, default=3.0, help="seconds per measurement (default 3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed runs before each measurement (default 3)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, the inputs and any calibration data (default 0)",
    )
    parser.add_argument(
        "--min-sparsity",
        type=float,
        help="rewrite every MatMul/Gemm/Conv at least this sparse (default: the rewriter's own "
        "judgement: its cost model, for INT8 the share of the weight's quads that hold a weight)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="time the rewrite as the cost model made it, without first verifying each ortsparse "
        "node against ORT on this CPU as rewrite-model does by default",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="keep the models built (and quantized) here and reuse them on later runs (default: a "
        "temporary dir)",
    )
    if deepsparse:
        parser.add_argument(
            "--deepsparse",
            type=Path,
            nargs="?",
            const=DEFAULT_DEEPSPARSE_PYTHON,
            metavar="PYTHON",
            help="also time DeepSparse 1.8 on the original model, with this Python interpreter "
            "(default: .venv-deepsparse/bin/python, made by tools/setup_deepsparse.sh)",
        )
    else:
        parser.set_defaults(deepsparse=None)
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON instead of a table"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("mlp", "bert"),
        default=["mlp", "bert"],
        help="models to run (default: mlp bert)",
    )
    add_pruning_options(parser, sparsities=[0.9], blocks=[1])
    parser.add_argument(
        "--mlp-batch", nargs="+", type=int, default=[1, 64], help="MLP batch sizes (default 1 64)"
    )
    parser.add_argument(
        "--mlp-layers",
        type=int,
        default=MlpConfig.layers,
        help="MLP layers of 1024x1024 (default 4)",
    )
    parser.add_argument("--bert-batch", type=int, default=1, help="BERT batch size (default 1)")
    parser.add_argument(
        "--bert-seq", type=int, default=128, help="BERT sequence length (default 128)"
    )
    parser.add_argument(
        "--bert-gelu",
        choices=("erf", "contrib"),
        default="erf",
        help="BERT's GELU as torch decomposes it (erf, default) or as one com.microsoft Gelu, as "
        "ONNX Runtime's optimizer writes it (contrib)",
    )
    parser.add_argument(
        "--bert-graph",
        choices=("torch", "ort-optimized"),
        default="torch",
        help="BERT as torch.onnx exports it (default) or as onnxruntime.transformers.optimizer "
        "fuses it: com.microsoft Attention, SkipLayerNormalization, BiasGelu (ort-optimized, "
        "whose GELU is BiasGelu: --bert-gelu contrib does not go with it)",
    )
    parser.add_argument(
        "--bert-layers", type=int, default=BertConfig.layers, help="BERT-base layers (default 12)"
    )
    add_measurement_options(parser)
    args = parser.parse_args(argv)
    if args.bert_graph == "ort-optimized" and args.bert_gelu == "contrib":
        parser.error("--bert-gelu contrib applies to torch graphs; ort-optimized ones use BiasGelu")
    return args


def run_and_report(workloads: list[ModelWorkload], args: argparse.Namespace) -> int:
    """Benchmarks `workloads`, prints the table (or JSON); 1 when any outputs differed."""
    with tempfile.TemporaryDirectory(prefix="ortsparse-bench-") as scratch:
        model_dir = args.model_dir or Path(scratch)
        model_dir.mkdir(parents=True, exist_ok=True)
        results = run_benchmarks(workloads, args, model_dir)
    print(
        json.dumps([asdict(r) for r in results], indent=2)
        if args.json
        else format_table(results, args.deepsparse is not None)
    )
    return 0 if all(r.outputs_match for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_report(workloads_from(args), args)


if __name__ == "__main__":
    sys.exit(main())
