#!/usr/bin/env bash
# Set up from nothing (tools/setup.sh), then run the whole test suite on this CPU, the op and
# network tests on the library built with ASan and UBSan (tools/test_sanitizers.sh), the tests of
# what an AVX2-only CPU changes, under QEMU (tools/test_avx2.sh), and the whole suite again on the
# oldest and the newest Python and onnxruntime supported (tools/test_versions.sh). Extra arguments
# go to every pytest run.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo_root/tools/setup.sh"
cd "$repo_root"
"${ORTSPARSE_VENV:-$repo_root/.venv}/bin/python" -m pytest "$@"
"$repo_root/tools/test_sanitizers.sh" "$@"
"$repo_root/tools/test_avx2.sh" "$@"
"$repo_root/tools/test_versions.sh" "$@"
