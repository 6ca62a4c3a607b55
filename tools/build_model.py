#!/usr/bin/env python3
"""Build a pruned MLP, BERT-style, ResNet-50 or YOLOv5s-like ONNX model; see
`python tools/build_model.py --help`."""

import sys
from pathlib import Path

# Run as a file, Python puts only tools/ on sys.path; the builders import as tools.model_builders.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.model_builders.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
