#!/usr/bin/env bash
# Fetch ONNX Runtime's C/C++ headers into a cache without installing anything system-wide.
#
# PyPI's onnxruntime wheel ships no headers. Debian 13 ("trixie") packages them as
# libonnxruntime-dev (ORT 1.21, C API version 21, which newer runtimes accept). On a bookworm
# machine that package must not be installed, so apt is pointed at a throw-away sources list and
# state directory, only the .deb is downloaded, and dpkg-deb unpacks it into the cache.
#
# Usage: tools/fetch_ort_headers.sh [CACHE_DIR]
# Prints the include directory (the one holding onnxruntime_c_api.h) on its last line.
set -euo pipefail

cache_dir="${1:-${ORTSPARSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ortsparse}/ort-headers}"
include_dir="$cache_dir/usr/include/onnxruntime"

if [ -f "$include_dir/onnxruntime_c_api.h" ]; then
  echo "$include_dir"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "fetch_ort_headers: '$tool' not found; set ONNXRUNTIME_INCLUDE_DIR instead" >&2; exit 1; }
done

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT
mkdir -p "$work_dir/lists/partial" "$work_dir/archives/partial" "$cache_dir"

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed_by=""
[ -f "$keyring" ] && signed_by="signed-by=$keyring"
echo "deb [$signed_by] http://deb.debian.org/debian trixie main" > "$work_dir/sources.list"

apt_options=(
  -o "Dir::Etc::SourceList=$work_dir/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work_dir/lists"
  -o "Dir::Cache=$work_dir"
  -o "Dir::Cache::archives=$work_dir/archives"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)

echo "fetch_ort_headers: reading the trixie package index..." >&2
apt-get "${apt_options[@]}" -qq update >&2
echo "fetch_ort_headers: downloading libonnxruntime-dev..." >&2
(cd "$work_dir" && apt-get "${apt_options[@]}" -qq download libonnxruntime-dev >&2)

deb_file="$(ls "$work_dir"/libonnxruntime-dev_*.deb)"
dpkg-deb -x "$deb_file" "$cache_dir"

if [ ! -f "$include_dir/onnxruntime_c_api.h" ]; then
  echo "fetch_ort_headers: $deb_file did not contain onnxruntime_c_api.h" >&2
  exit 1
fi
echo "fetch_ort_headers: headers in $include_dir" >&2
echo "$include_dir"
