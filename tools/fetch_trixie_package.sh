#!/usr/bin/env bash
# Download one package of Debian 13 ("trixie") and unpack it into a directory, installing nothing.
#
# On a bookworm machine trixie's packages must not be installed system-wide, so apt is pointed at
# a throw-away sources list and state directory, only the .deb is downloaded, and its files are
# unpacked into DEST (which then holds its usr/, etc/, ... tree): all of them, or only the PATHs
# given (as the package names them, e.g. ./usr/bin/qemu-x86_64).
#
# Usage: tools/fetch_trixie_package.sh PACKAGE DEST [PATH...]
set -euo pipefail

package="$1"
dest="$2"
shift 2

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "fetch_trixie_package: '$tool' not found" >&2; exit 1; }
done

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT
mkdir -p "$work_dir/lists/partial" "$work_dir/archives/partial" "$dest"

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

echo "fetch_trixie_package: reading the trixie package index..." >&2
apt-get "${apt_options[@]}" -qq update >&2
echo "fetch_trixie_package: downloading $package..." >&2
(cd "$work_dir" && apt-get "${apt_options[@]}" -qq download "$package" >&2)

deb_file="$(ls "$work_dir/${package}"_*.deb)"
if [ $# -eq 0 ]; then
  dpkg-deb -x "$deb_file" "$dest"
else
  dpkg-deb --fsys-tarfile "$deb_file" | tar -x -C "$dest" "$@"
fi
