#!/usr/bin/env bash
# Prepares, on a Debian 12 machine with network access to the archive, the Debian packages a
# CUDA build of moebench needs on a GPU machine that has PyTorch (with CUDA, NCCL and LibTorch
# inside), CMake, ninja and nvcc but no Debian -dev packages and no network. The packages are
# downloaded (`apt-get download`, no installation, no root) and unpacked (`dpkg -x`) into one
# prefix folder to carry there. See docs/gpu.md for the build commands that use it.
#
# Usage: scripts/gpu_debs.sh [PREFIX_DIR]   (default: gpu-prefix, ignored by git; ~50 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:-gpu-prefix}
PACKAGES=(
  libsqlite3-dev libsqlite3-0 sqlite3
  nlohmann-json3-dev libcli11-dev
  libtomlplusplus-dev libtomlplusplus3
  libgtest-dev libbenchmark-dev libbenchmark1debian
  libsentencepiece-dev libsentencepiece0
  libicu-dev libicu72
  libmecab-dev libmecab2
)
debs=$(mktemp -d)
trap 'rm -rf "$debs"' EXIT
(cd "$debs" && apt-get download "${PACKAGES[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
n=$(find "$debs" -name '*.deb' | wc -l)
if [ "$n" -ne "${#PACKAGES[@]}" ]; then
  echo "gpu_debs.sh: downloaded $n of ${#PACKAGES[@]} packages (is the Debian archive reachable?)" >&2
  exit 1
fi
rm -rf "$PREFIX"
mkdir -p "$PREFIX"
for d in "$debs"/*.deb; do dpkg -x "$d" "$PREFIX"; done
# Only what a build and a run need: headers, libraries, CMake configs.
# (The device tool carries at most 64 MiB: ICU's static libraries and its unused parts go.)
rm -rf "$PREFIX/usr/share/doc" "$PREFIX/usr/share/man" "$PREFIX/usr/share/lintian"
lib="$PREFIX/usr/lib/x86_64-linux-gnu"
rm -f "$lib"/libicu*.a "$lib"/libicutest.* "$lib"/libicuio.* "$lib"/libicutu.* "$lib"/libsqlite3.a \
  "$lib"/libmecab.a
ls "$debs" > "$PREFIX/PACKAGES"
echo "gpu_debs.sh: ${#PACKAGES[@]} packages unpacked into $PREFIX ($(du -sh "$PREFIX" | cut -f1))"
