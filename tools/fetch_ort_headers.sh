#!/usr/bin/env bash
# Fetch ONNX Runtime's C/C++ headers into a cache without installing anything system-wide.
#
# PyPI's onnxruntime wheel ships no headers. Debian 13 ("trixie") packages them as
# libonnxruntime-dev (ORT 1.21, C API version 21, which newer runtimes accept), which
# tools/fetch_trixie_package.sh unpacks into the cache.
#
# Usage: tools/fetch_ort_headers.sh [CACHE_DIR]
# Prints the include directory (the one holding onnxruntime_c_api.h) on its last line.
set -euo pipefail

cache_dir="${1:-${ORTSPARSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ortsparse}/ort-headers}"
include_dir="$cache_dir/usr/include/onnxruntime"

if [ ! -f "$include_dir/onnxruntime_c_api.h" ]; then
  "$(dirname "${BASH_SOURCE[0]}")/fetch_trixie_package.sh" libonnxruntime-dev "$cache_dir"
  if [ ! -f "$include_dir/onnxruntime_c_api.h" ]; then
    echo "fetch_ort_headers: libonnxruntime-dev did not contain onnxruntime_c_api.h" >&2
    exit 1
  fi
  echo "fetch_ort_headers: headers in $include_dir" >&2
fi
echo "$include_dir"
