#!/usr/bin/env bash
# Set up from nothing (tools/setup.sh), then run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo_root/tools/setup.sh"
cd "$repo_root"
exec "${ORTSPARSE_VENV:-$repo_root/.venv}/bin/python" -m pytest "$@"
