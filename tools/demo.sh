#!/usr/bin/env bash
# The main job from nothing: set up (tools/setup.sh), build a 90%-sparse demo model, rewrite it and
# show its speed against ONNX Runtime on the original. Extra arguments go to tools/demo.py.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo_root/tools/setup.sh"
cd "$repo_root"
exec "${ORTSPARSE_VENV:-$repo_root/.venv}/bin/python" tools/demo.py "$@"
