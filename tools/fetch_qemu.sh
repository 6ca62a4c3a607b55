#!/usr/bin/env bash
# Fetch a qemu-x86_64 that runs x86-64 programs on a chosen CPU model (e.g. an AVX2 CPU without
# AVX-512), into a cache, installing nothing system-wide.
#
# Debian 13 ("trixie") ships QEMU 10 in qemu-user, statically linked, so it runs on bookworm too.
# Bookworm's own qemu-user (QEMU 7.2) is not used: it decodes a VSIB index register numbered 4
# (vgatherdps with ymm4 as index) as "no index", gathering x[0] in every lane, which breaks code
# that gathers (the AVX2 row kernels) as no real CPU would.
#
# Usage: tools/fetch_qemu.sh [CACHE_DIR]
# Prints the path of qemu-x86_64 on its last line.
set -euo pipefail

cache_dir="${1:-${ORTSPARSE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ortsparse}/qemu}"
qemu="$cache_dir/usr/bin/qemu-x86_64"

if [ ! -x "$qemu" ]; then
  "$(dirname "${BASH_SOURCE[0]}")/fetch_trixie_package.sh" qemu-user "$cache_dir" \
    ./usr/bin/qemu-x86_64
  [ -x "$qemu" ] || { echo "fetch_qemu: qemu-user did not contain qemu-x86_64" >&2; exit 1; }
  echo "fetch_qemu: $qemu" >&2
fi
echo "$qemu"
