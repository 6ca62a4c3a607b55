#!/usr/bin/env bash
# One-step set-up on a fresh machine: ONNX Runtime headers (if none are provided), a virtual
# environment at .venv, and ortsparse built and installed into it with its server extra (pipelines,
# HTTP server) and its test dependencies.
# Sourced by tools/demo.sh and tools/test.sh; safe to run again (the header download and the
# CMake build directory are reused).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ORTSPARSE_VENV:-$repo_root/.venv}"
python="${PYTHON:-python3}"

if [ -z "${ONNXRUNTIME_INCLUDE_DIR:-}" ] && [ ! -f /usr/include/onnxruntime/onnxruntime_c_api.h ]; then
  echo "setup: fetching ONNX Runtime headers (cached after the first time)..." >&2
  "$repo_root/tools/fetch_ort_headers.sh" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating virtual environment $venv..." >&2
  "$python" -m venv "$venv"
fi

echo "setup: building and installing ortsparse into $venv..." >&2
"$venv/bin/python" -m pip install --quiet "$repo_root[server,test]"
echo "setup: done" >&2
