#!/usr/bin/env bash
# The whole test suite on the oldest and on the newest Python and onnxruntime that ortsparse
# supports, each in a virtual environment of its own, set up by tools/setup.sh and kept between
# runs (.venv-py310, .venv-py313):
#   * Python 3.10 with every dependency at the floor pyproject.toml states (onnxruntime 1.21,
#     onnx 1.17, numpy 1.23, ...; tools/floor_constraints.py pins them), so that the floors are
#     what is tested;
#   * Python 3.13 with the newest release of every dependency (upgraded on each run).
# The Pythons are pyenv's: under $PYENV_ROOT, else `pyenv root`, else ~/.pyenv. About 2 to 3
# minutes a pair on 2 cores, of which about 1 sets up (builds ortsparse). Extra arguments go to
# pytest.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pyenv_root="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
cd "$repo_root"

# The newest patch release of Python $1 (e.g. 3.10) that pyenv has installed.
pyenv_python() {
  local found
  found="$(find "$pyenv_root/versions" -maxdepth 1 -name "$1.[0-9]*" 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$found" ] || [ ! -x "$found/bin/python" ]; then
    echo "test_versions: no Python $1 in $pyenv_root/versions; install it: pyenv install $1" >&2
    exit 1
  fi
  echo "$found/bin/python"
}

oldest_python="$(pyenv_python 3.10)"
newest_python="$(pyenv_python 3.13)"
floors="$(mktemp)"
trap 'rm -f "$floors"' EXIT
"$newest_python" tools/floor_constraints.py >"$floors"

# Sets up $1 (a virtual environment of Python $2) with setup.sh, the environment variables after
# them going to pip, then runs the suite there.
run_suite() {
  local name="$1" venv="$repo_root/$1" python="$2" label start=$SECONDS
  shift 2
  echo "versions: setting up $name with $python..." >&2
  env "$@" PYTHON="$python" ORTSPARSE_VENV="$venv" "$repo_root/tools/setup.sh"
  label="$("$venv/bin/python" -c 'import platform, onnxruntime, onnx, numpy
print(f"python {platform.python_version()} + onnxruntime {onnxruntime.__version__} "
      f"(onnx {onnx.__version__}, numpy {numpy.__version__})")')"
  echo "versions: $label: set up in $((SECONDS - start)) s; running the test suite..." >&2
  start=$SECONDS
  "$venv/bin/python" -m pytest -p no:cacheprovider -q "${pytest_arguments[@]}"
  echo "versions: $label: passed in $((SECONDS - start)) s" >&2
}

pytest_arguments=("$@")
run_suite .venv-py310 "$oldest_python" PIP_CONSTRAINT="$floors"
run_suite .venv-py313 "$newest_python" PIP_UPGRADE=1 PIP_UPGRADE_STRATEGY=eager
