"""Builders of pruned ONNX test and benchmark models (MLP, BERT-style encoder, ResNet-50,
YOLOv5s-like detector).

Used as a library (`from tools.model_builders import build_mlp, MlpConfig`) or from the command
line (`python tools/build_model.py --help`, or `python -m tools.model_builders --help`).
"""

from .bert import BertConfig, build_bert
from .mlp import MlpConfig, build_mlp
from .resnet import ResNetConfig, build_resnet
from .weights import conv_weights, linear_weights, overall_sparsity
from .yolo import YoloConfig, build_yolo

__all__ = [
    "BertConfig",
    "MlpConfig",
    "ResNetConfig",
    "YoloConfig",
    "build_bert",
    "build_mlp",
    "build_resnet",
    "build_yolo",
    "conv_weights",
    "linear_weights",
    "overall_sparsity",
]
