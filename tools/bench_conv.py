#!/usr/bin/env python3
"""ONNX Runtime vs ortsparse throughput on pruned ResNet-50 and a YOLOv5s-like detector.

The convolutional counterpart of tools/bench_gemm.py, with the same machinery: for every workload
(model x batch x sparsity x pruning pattern) one original model is built (or reused from
--model-dir) and rewritten with ortsparse; stock ORT runs the original and ortsparse the rewrite,
both with ORT_ENABLE_ALL and --threads intra-op threads, timed in alternating 0.25 s slices
(--time seconds each in all). The first run of each pair checks that the outputs agree (max |diff|
<= 1e-3 * max |Y_ort|); if not, a loud warning is printed and the exit status is 1. Items are
images. --deepsparse also times DeepSparse 1.8 on the original model (written at IR 8, opset 17
for it, as tools/bench_gemm.py's are).

Models come from tools/model_builders: ResNet-50 v1.5 (Conv + BatchNormalization + Relu, stem conv
and fc dense) and YOLOv5s (Conv + BatchNormalization + SiLU, stem conv dense). The rewriter's cost
model, measured on SparseConv against ORT's Conv, decides which convolutions to rewrite unless
--min-sparsity overrides it; the "rewritten" column counts the MatMul/Gemm/Conv nodes that
became SparseGemm/SparseConv.

    python tools/bench_conv.py      # both models, batch 1 and 16, 80%/90% unstructured/4-block
    python tools/bench_conv.py --models resnet50 --batch 1 --sparsity 0.9 --block 1 4 --time 3
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

# Run as a file, Python puts only tools/ on sys.path; the helpers import as tools.*.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402

from tools.bench_gemm import (  # noqa: E402
    DEEPSPARSE_VERSIONS,
    add_measurement_options,
    add_pruning_options,
    pruning_label,
    run_and_report,
)
from tools.model_builders import (  # noqa: E402
    ResNetConfig,
    YoloConfig,
    build_resnet,
    build_yolo,
)

DEFAULT_RESOLUTIONS = {"resnet50": ResNetConfig.resolution, "yolo": YoloConfig.resolution}


@dataclass(frozen=True)
class ConvWorkload:
    model: str  # "resnet50" or "yolo"
    batch: int
    sparsity: float
    block: int  # 1: unstructured, 4: 4-block pruning
    resolution: int

    @property
    def label(self) -> str:
        return (
            f"{self.model} {self.resolution}px batch {self.batch}, "
            f"{pruning_label(self.sparsity, self.block)}"
        )

    def model_file_name(self, seed: int) -> str:
        # The batch is symbolic in the model, so workloads differing only in it share one file.
        return f"{self.model}_r{self.resolution}_s{self.sparsity:g}_b{self.block}_seed{seed}.onnx"

    def build(self, seed: int) -> onnx.ModelProto:
        # Written at versions DeepSparse reads, so that it can run the same file.
        common = {
            "sparsity": self.sparsity,
            "block": self.block,
            "seed": seed,
            "versions": DEEPSPARSE_VERSIONS,
        }
        if self.model == "resnet50":
            return build_resnet(ResNetConfig(resolution=self.resolution, **common))
        return build_yolo(YoloConfig(resolution=self.resolution, **common))

    def input_shape(self, declared: list[int | str]) -> tuple[int, ...]:
        return (self.batch, *declared[1:])  # only the batch is symbolic


def workloads_from(args: argparse.Namespace) -> list[ConvWorkload]:
    resolutions = {"resnet50": args.resnet_resolution, "yolo": args.yolo_resolution}
    return [
        ConvWorkload(model, batch, sparsity, block, resolutions[model])
        for model in args.models
        for sparsity in args.sparsity
        for block in args.block
        for batch in args.batch
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=("resnet50", "yolo"),
        default=["resnet50", "yolo"],
        help="models to run (default: resnet50 yolo)",
    )
    add_pruning_options(parser, sparsities=[0.8, 0.9], blocks=[1, 4])
    parser.add_argument(
        "--batch", nargs="+", type=int, default=[1, 16], help="batch sizes (default 1 16)"
    )
    parser.add_argument(
        "--resnet-resolution",
        type=int,
        default=DEFAULT_RESOLUTIONS["resnet50"],
        help="ResNet-50 input size (default 224)",
    )
    parser.add_argument(
        "--yolo-resolution",
        type=int,
        default=DEFAULT_RESOLUTIONS["yolo"],
        help="YOLO input size, a multiple of 32 (default 640)",
    )
    add_measurement_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_report(workloads_from(args), args)


if __name__ == "__main__":
    sys.exit(main())
