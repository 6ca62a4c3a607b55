"""Command line for the model builders: `build_model.py {mlp,bert} --out FILE [options]`."""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx

from .bert import BertConfig, build_bert
from .mlp import MlpConfig, build_mlp
from .weights import overall_sparsity


def _add_pruning_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sparsity", type=float, default=0.9, help="fraction of weights pruned (default 0.9)"
    )
    parser.add_argument(
        "--block",
        type=int,
        choices=(1, 4),
        default=1,
        help="1: unstructured magnitude pruning (default); 4: prune blocks of 4 consecutive output "
        "channels at one input index, by L2 norm",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights (default 0)"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the .onnx model")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_model.py",
        description="Build a randomly initialised, magnitude-pruned ONNX model (opset 17).",
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
    _add_pruning_options(bert)
    return parser


def _build(args: argparse.Namespace) -> onnx.ModelProto:
    pruning = {"sparsity": args.sparsity, "block": args.block, "seed": args.seed}
    if args.model == "mlp":
        return build_mlp(
            MlpConfig(layers=args.layers, hidden=args.hidden, gemm=args.gemm, **pruning)
        )
    return build_bert(
        BertConfig(
            layers=args.layers,
            hidden=args.hidden,
            heads=args.heads,
            intermediate=args.intermediate,
            seq=args.seq,
            **pruning,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    model = _build(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(
        f"wrote {args.out}: {args.model}, {len(model.graph.node)} nodes, "
        f"weight sparsity {overall_sparsity(model):.4f}"
    )
    return 0
