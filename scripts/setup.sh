#!/usr/bin/env bash
# Installs every Debian package moebench needs. Idempotent; run as root or with sudo.
#   --with-slurm   also the launchers the cluster tests run against: Slurm (slurm-wlm: slurmctld,
#                  slurmd, sbatch, srun) with munge, Open MPI (openmpi-bin: mpirun) and PyTorch
#                  (python3-torch: torchrun). The tests start their own throwaway daemons; the
#                  packages' own services are not configured or started by this script.
set -euo pipefail

with_slurm=0
for arg in "$@"; do
  case "$arg" in
    --with-slurm) with_slurm=1 ;;
    *) echo "setup.sh: unknown option '$arg' (known: --with-slurm)" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libgloo-dev            # LibTorch 1.13 (CPU) and the c10d/Gloo headers
  libopenblas0-pthread               # without it matrix products run ~15x slower
  libsqlite3-dev sqlite3
  libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsentencepiece-dev sentencepiece
  libicu-dev
  libmecab-dev mecab-ipadic-utf8    # BLEU's ja-mecab tokenizer (sacreBLEU's choice for Japanese)
  mecab                              # the mecab command, which the tokenizer test checks against
  python3-matplotlib python3-numpy   # reports, run with /usr/bin/python3
  clang-format
)
if [ "$with_slurm" = 1 ]; then
  PACKAGES+=(slurm-wlm munge openmpi-bin python3-torch)
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "setup.sh: need root or sudo to install Debian packages" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  unavailable=()
  for p in "${missing[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || unavailable+=("$p")
  done
  if [ "${#unavailable[@]}" -gt 0 ]; then
    echo "setup.sh: these packages are not in the configured Debian archive: ${unavailable[*]}" >&2
    echo "setup.sh: moebench needs Debian 12 (bookworm) with the main component enabled." >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
else
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
fi

# OpenBLAS must be the BLAS that LibTorch picks up (see docs/PERFORMANCE.md).
alt=libblas.so.3-x86_64-linux-gnu
target=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if command -v update-alternatives >/dev/null 2>&1 && [ -e "$target" ]; then
  if ! update-alternatives --query "$alt" 2>/dev/null | grep -q "^Value: $target"; then
    "${SUDO[@]}" update-alternatives --set "$alt" "$target"
  fi
fi
echo "setup.sh: done"
