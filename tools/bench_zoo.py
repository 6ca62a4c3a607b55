#!/usr/bin/env python3
"""ONNX Runtime vs ortsparse throughput on the trained third-party models of tools/model_zoo.py,
dense and magnitude-pruned, side by side.

The machinery of tools/bench_gemm.py (ORT_ENABLE_ALL, --threads intra-op threads for both,
alternating 0.25 s slices, outputs checked first, rewrites verified on this CPU at the model's
input size unless --no-verify), on the zoo's models at their input sizes (model_zoo.ZooModel).
Sparsity 0 is the model as its package ships it. --deepsparse also times DeepSparse 1.8 on the
model where it can run it ("-" where not: the onnxruntime inside it reads no IR version above 9).

    python tools/bench_zoo.py                            # every model, dense and 80% unstructured
    python tools/bench_zoo.py --names ocr_cls --sparsity 0.8 0.9 --block 1 4 --time 3
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402

from tools.bench_gemm import (  # noqa: E402
    add_measurement_options,
    add_pruning_options,
    pruning_label,
    run_and_report,
)
from tools.model_zoo import MODELS, fetch, pruned  # noqa: E402


@dataclass(frozen=True)
class ZooWorkload:
    model: str  # a model_zoo.MODELS name
    sparsity: float
    block: int

    @property
    def batch(self) -> int:
        return MODELS[self.model].input_shape[0]

    @property
    def label(self) -> str:
        shape = MODELS[self.model].input_shape
        size = "x".join(map(str, shape[2:])) if len(shape) == 4 else f"seq {shape[-1]}"
        pruning = "dense" if self.sparsity == 0 else pruning_label(self.sparsity, self.block)
        return f"{self.model} {size}, {pruning}"

    def model_file_name(self, seed: int) -> str:
        return f"{self.model}_s{self.sparsity:g}_b{self.block}.onnx"

    def build(self, seed: int) -> onnx.ModelProto:
        zoo = MODELS[self.model]
        path = fetch(zoo) if self.sparsity == 0 else pruned(zoo, self.sparsity, self.block)
        return onnx.load(str(path))

    def input_shape(self, declared: list[int | str]) -> tuple[int, ...]:
        return MODELS[self.model].input_shape


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    add_pruning_options(parser, sparsities=[0.0, 0.8], blocks=[1])
    add_measurement_options(parser)
    args = parser.parse_args(argv)
    workloads = [
        ZooWorkload(name, sparsity, block if sparsity else 1)
        for name in args.names
        for sparsity in args.sparsity
        for block in (args.block if sparsity else [1])
    ]
    return run_and_report(list(dict.fromkeys(workloads)), args)


if __name__ == "__main__":
    sys.exit(main())
