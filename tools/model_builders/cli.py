"""Command line for the model builders:
`build_model.py {mlp,bert,resnet50,yolo} --out FILE [options]`."""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx
from onnx import helper
from ortsparse.model_versions import ModelVersions, newest_model_versions

from .bert import BertConfig, build_bert
from .mlp import MlpConfig, build_mlp
from .pruning import BLOCKS, UNSTRUCTURED
from .resnet import ResNetConfig, build_resnet
from .weights import overall_sparsity
from .yolo import YoloConfig, build_yolo


def block_pattern(text: str) -> int | str:
    """A --block value as the builders take it: digits as an int (1, 4), anything else as given
    ("4k"), for argparse's `choices` to check."""
    return int(text) if text.isdigit() else text


def _add_pruning_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sparsity", type=float, default=0.9, help="fraction of weights pruned (default 0.9)"
    )
    parser.add_argument(
        "--block",
        type=block_pattern,
        choices=BLOCKS,
        default=UNSTRUCTURED,
        help="1: unstructured magnitude pruning (default); 4: prune blocks of 4 consecutive output "
        "channels at one input index; 4k: prune blocks of 4 consecutive input features of one "
        "output channel (of a conv: 4 input channels at one kernel tap), the quads INT8 "
        "SparseQGemm stores; blocks go by L2 norm",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights (default 0)"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the .onnx model")
    parser.add_argument(
        "--opset",
        type=int,
        help="ai.onnx opset to write, 17 or newer (default: the newest the installed onnxruntime "
        "runs), e.g. 17 for DeepSparse 1.8",
    )
    parser.add_argument(
        "--ir-version",
        type=int,
        help="IR version to write (default: the newest the installed onnxruntime runs), e.g. 8 "
        "for DeepSparse 1.8",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_model.py",
        description="Build a randomly initialised, magnitude-pruned ONNX model.",
    )
    models = parser.add_subparsers(dest="model", required=True)

    mlp = models.add_parser(
        "mlp", help="MLP: Linear layers with Relu between them, input 'input' [batch, hidden]"
    )
    mlp.add_argument(
        "--layers", type=int, default=MlpConfig.layers, help="number of Linear layers (default 4)"
    )
    mlp.add_argument(
        "--hidden", type=int, default=MlpConfig.hidden, help="width of every layer (default 1024)"
    )
    mlp.add_argument(
        "--gemm", action="store_true", help="write each Linear as one Gemm (transB=1) node"
    )
    _add_pruning_options(mlp)

    bert = models.add_parser(
        "bert",
        help="BERT-style encoder as torch.onnx exports it, input 'input_embeddings'",
    )
    bert.add_argument(
        "--layers", type=int, default=BertConfig.layers, help="encoder layers (default 12)"
    )
    bert.add_argument(
        "--hidden", type=int, default=BertConfig.hidden, help="hidden size (default 768)"
    )
    bert.add_argument(
        "--heads", type=int, default=BertConfig.heads, help="attention heads (default 12)"
    )
    bert.add_argument(
        "--intermediate",
        type=int,
        default=BertConfig.intermediate,
        help="FFN inner size (default 3072)",
    )
    bert.add_argument(
        "--seq", type=int, default=None, help="fix the sequence length (default: symbolic)"
    )
    bert.add_argument(
        "--gelu",
        choices=("erf", "contrib"),
        default=BertConfig.gelu,
        help="erf: GELU as torch decomposes it (default); contrib: one com.microsoft Gelu node, as "
        "ONNX Runtime's optimizer writes it (torch graphs only)",
    )
    bert.add_argument(
        "--graph",
        choices=("torch", "ort-optimized"),
        default=BertConfig.graph,
        help="torch: as torch.onnx exports it (default); ort-optimized: as "
        "onnxruntime.transformers.optimizer fuses it (com.microsoft Attention, "
        "SkipLayerNormalization, BiasGelu)",
    )
    _add_pruning_options(bert)
    _add_resnet_parser(models)
    _add_yolo_parser(models)
    return parser


def _add_resnet_parser(models: argparse._SubParsersAction) -> None:
    resnet = models.add_parser(
        "resnet50",
        help="ResNet-50 v1.5 as torch.onnx exports torchvision's (Conv + BatchNormalization + "
        "Relu), input 'input' [batch, 3, resolution, resolution]; the stem conv and fc stay dense",
    )
    resnet.add_argument(
        "--stages",
        type=int,
        nargs=4,
        default=ResNetConfig.stages,
        metavar="N",
        help="bottlenecks per stage (default 3 4 6 3)",
    )
    resnet.add_argument(
        "--width",
        type=int,
        default=ResNetConfig.width,
        help="stem channels and first-stage bottleneck width (default 64)",
    )
    resnet.add_argument(
        "--resolution", type=int, default=ResNetConfig.resolution, help="input size (default 224)"
    )
    resnet.add_argument(
        "--classes", type=int, default=ResNetConfig.classes, help="fc outputs (default 1000)"
    )
    _add_pruning_options(resnet)


def _add_yolo_parser(models: argparse._SubParsersAction) -> None:
    yolo = models.add_parser(
        "yolo",
        help="YOLOv5s-like detector as YOLOv5 exports it (Conv + BatchNormalization + SiLU, C3, "
        "SPPF, FPN/PAN neck), input 'images' [batch, 3, resolution, resolution]; the stem conv "
        "stays dense",
    )
    yolo.add_argument(
        "--width", type=float, default=YoloConfig.width, help="channel multiple (default 0.5: s)"
    )
    yolo.add_argument(
        "--depth",
        type=float,
        default=YoloConfig.depth,
        help="bottleneck-count multiple (default 0.33: s)",
    )
    yolo.add_argument(
        "--resolution",
        type=int,
        default=YoloConfig.resolution,
        help="input size, a multiple of 32 (default 640)",
    )
    yolo.add_argument(
        "--classes", type=int, default=YoloConfig.classes, help="object classes (default 80)"
    )
    _add_pruning_options(yolo)


def _versions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ModelVersions:
    newest = newest_model_versions()
    versions = ModelVersions(args.ir_version or newest.ir_version, args.opset or newest.opset)
    if versions.opset < 17:
        parser.error(f"--opset {versions.opset}: the builders write opset 17 or newer")
    needed = helper.find_min_ir_version_for([helper.make_opsetid("", versions.opset)])
    if versions.ir_version < needed:
        parser.error(
            f"--ir-version {versions.ir_version}: opset {versions.opset} needs IR version {needed}"
        )
    return versions


def _build(args: argparse.Namespace, versions: ModelVersions) -> onnx.ModelProto:
    common = {
        "sparsity": args.sparsity,
        "block": args.block,
        "seed": args.seed,
        "versions": versions,
    }
    if args.model == "mlp":
        return build_mlp(
            MlpConfig(layers=args.layers, hidden=args.hidden, gemm=args.gemm, **common)
        )
    if args.model == "resnet50":
        return build_resnet(
            ResNetConfig(
                stages=tuple(args.stages),
                width=args.width,
                resolution=args.resolution,
                classes=args.classes,
                **common,
            )
        )
    if args.model == "yolo":
        return build_yolo(
            YoloConfig(
                width=args.width,
                depth=args.depth,
                resolution=args.resolution,
                classes=args.classes,
                **common,
            )
        )
    return build_bert(
        BertConfig(
            layers=args.layers,
            hidden=args.hidden,
            heads=args.heads,
            intermediate=args.intermediate,
            seq=args.seq,
            gelu=args.gelu,
            graph=args.graph,
            **common,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    model = _build(args, _versions(parser, args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(
        f"wrote {args.out}: {args.model}, {len(model.graph.node)} nodes, "
        f"weight sparsity {overall_sparsity(model):.4f}, IR version {model.ir_version}, "
        f"opset {model.opset_import[0].version}"
    )
    return 0
