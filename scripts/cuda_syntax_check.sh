#!/usr/bin/env bash
# Compiles (syntax only) the CUDA build's code on a machine without a GPU, before device time is
# spent on a build: every translation unit of a CPU build that reaches `#ifdef MOEBENCH_CUDA`
# code, with -DMOEBENCH_CUDA -DUSE_C10D_NCCL, against the CPU LibTorch's headers (Debian's 1.13
# ships ATen/cuda, c10/cuda and ProcessGroupNCCL.hpp) and a CUDA toolkit's headers (cuda_runtime
# and nccl.h). It finds moebench's own mistakes in CUDA-only code (a missing include, a wrong
# name or argument); an API that differs between this LibTorch and the GPU machine's (2.x) is
# checked where torch_compat.h selects it, not here. See docs/gpu.md.
#
# Usage: scripts/cuda_syntax_check.sh [BUILD_DIR]   (default: build; a configured CPU build,
#        whose compile_commands.json gives each file's flags)
# Environment: CUDA_HOME (default /usr/local/cuda), JOBS (default nproc).
# Exit status: 0 when every file compiles, 1 when one does not (its errors printed), 2 when
# what it needs is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${1:-build}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
JOBS=${JOBS:-$(nproc)}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

db="$BUILD_DIR/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "cuda_syntax_check.sh: no $db (configure a CPU build first: scripts/build.sh)" >&2
  exit 2
fi
if [ ! -f "$CUDA_HOME/include/cuda_runtime_api.h" ] || [ ! -f "$CUDA_HOME/include/nccl.h" ]; then
  echo "cuda_syntax_check.sh: no CUDA headers with nccl.h under $CUDA_HOME/include (set CUDA_HOME)" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# LibTorch's c10/cuda headers include a header its CMake writes at build time.
mkdir -p "$work/inc/c10/cuda/impl"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' \
  >"$work/inc/c10/cuda/impl/cuda_cmake_macros.h"

# One command per translation unit that includes, directly or through the project's headers, a
# file with CUDA-only code; -fsyntax-only instead of -o/-c, no precompiled header.
"$PY" - "$ROOT" "$db" "$work" "$CUDA_HOME" >"$work/commands" <<'EOF' ||
import json, os, re, shlex, sys
root, db, work, cuda = sys.argv[1:5]
include = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
texts = {}
def text(path):
    if path not in texts:
        try:
            with open(path, errors="ignore") as f:
                texts[path] = f.read()
        except OSError:
            texts[path] = ""
    return texts[path]
memo = {}
def reaches_cuda(path, seen):
    if path in memo:
        return memo[path]
    if path in seen:
        return False
    seen.add(path)
    t = text(path)
    found = "MOEBENCH_CUDA" in t
    for name in include.findall(t):
        p = os.path.join(root, name)
        if not found and os.path.isfile(p):
            found = reaches_cuda(p, seen)
    memo[path] = found
    return found
for entry in json.load(open(db)):
    src = entry["file"]
    if not reaches_cuda(src, set()):
        continue
    args = shlex.split(entry["command"])
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a in ("-o", "-c", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a == "-include" and i + 1 < len(args) and "pch" in args[i + 1]:
            skip = True
            continue
        if a in ("-MD", "-MMD", "-Winvalid-pch") or a.endswith(".gch"):
            continue
        out.append(a)
    out += ["-fsyntax-only", "-DMOEBENCH_CUDA", "-DUSE_C10D_NCCL", "-I" + work + "/inc",
            "-isystem", cuda + "/include", src]
    print(shlex.quote(entry["directory"]) + "\t" + " ".join(shlex.quote(a) for a in out))
EOF
  {
    echo "cuda_syntax_check.sh: reading $db failed" >&2
    exit 2
  }
n=$(wc -l <"$work/commands")
if [ "$n" -eq 0 ]; then
  echo "cuda_syntax_check.sh: no file of $db reaches CUDA-only code" >&2
  exit 2
fi
echo "cuda_syntax_check.sh: $n files, $JOBS at a time"
i=0
while IFS=$'\t' read -r dir cmd; do
  i=$((i + 1))
  echo "$dir"$'\t'"$cmd" >"$work/cmd.$i"
done <"$work/commands"
check() {
  local f=$1 dir cmd
  IFS=$'\t' read -r dir cmd <"$f"
  if ! (cd "$dir" && eval "$cmd") >"$f.log" 2>&1; then
    echo "FAILED ${cmd##* }"
  fi
}
export -f check
ls "$work"/cmd.* | grep -v '[.]log$' | xargs -P "$JOBS" -I{} bash -c 'check "$1"' _ {} \
  >"$work/failed"
if [ -s "$work/failed" ]; then
  cat "$work/failed"
  for f in "$work"/cmd.*.log; do [ -s "$f" ] && grep -E "error|Error" "$f" | head -20; done
  echo "cuda_syntax_check.sh: $(wc -l <"$work/failed") of $n files do not compile"
  exit 1
fi
echo "cuda_syntax_check.sh: all $n files compile"
