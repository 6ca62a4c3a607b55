"""Builders of pruned ONNX test and benchmark models (MLP, BERT-style encoder).

Used as a library (`from tools.model_builders import build_mlp, MlpConfig`) or from the command
line (`python tools/build_model.py --help`, or `python -m tools.model_builders --help`).
"""

from .bert import BertConfig, build_bert
from .mlp import MlpConfig, build_mlp
from .weights import linear_weights, overall_sparsity

__all__ = [
    "BertConfig",
    "MlpConfig",
    "build_bert",
    "build_mlp",
    "linear_weights",
    "overall_sparsity",
]
