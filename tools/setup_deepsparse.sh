#!/usr/bin/env bash
# Creates .venv-deepsparse with DeepSparse 1.8 (deprecated, closed-source; Python 3.8-3.11 only),
# the engine ortsparse's benchmarks compare against. Kept apart from the project's own environment:
# DeepSparse is never a dependency of ortsparse.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ORTSPARSE_DEEPSPARSE_VENV:-$repo_root/.venv-deepsparse}"
python="${DEEPSPARSE_PYTHON:-python3.11}"

if [ ! -x "$venv/bin/python" ]; then
  command -v "$python" >/dev/null || { echo "setup_deepsparse: $python not found (DeepSparse 1.8 needs Python <= 3.11; set DEEPSPARSE_PYTHON)" >&2; exit 1; }
  echo "setup_deepsparse: creating $venv..." >&2
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet "deepsparse==1.8.0"
echo "$venv/bin/python"
