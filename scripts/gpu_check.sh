#!/usr/bin/env bash
# Builds and checks moebench on a GPU machine that has PyTorch with CUDA (LibTorch inside),
# CMake, ninja and nvcc, with the Debian packages from scripts/gpu_debs.sh in gpu-prefix/.
# See docs/gpu.md. Each phase logs to LOG_DIR (default build-gpu/logs) and the script goes on
# to the next phase only when the build succeeded.
#
# Usage: scripts/gpu_check.sh [PHASE...]   phases: env build gputest test bench train tables
#        (default: all; gputest: the GPU unit tests and the device/precision end-to-end test;
#        tables: the bench and training tables with the GPU issue's targets, LOG_DIR/tables.md)
# Environment: LOG_DIR, BUILD_DIR (build-gpu), JOBS (nproc), TEST_TIMEOUT (s, per test),
#   BENCH_ARGS (more moebench_bench flags, e.g. --long), TRAIN_SIZES (default: small base),
#   TRAIN_STEPS (default 60: steps of the size's GPU batch, Note [GPU batch defaults]),
#   BUILD_TARGETS (default: all).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build-gpu}
LOG_DIR=${LOG_DIR:-$BUILD_DIR/logs}
JOBS=${JOBS:-$(nproc)}
PHASES=${*:-env build gputest test bench train tables}
mkdir -p "$LOG_DIR" "$BUILD_DIR"
PREFIX=$ROOT/gpu-prefix/usr
export LD_LIBRARY_PATH=$PREFIX/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The prefix's sqlite3: the end-to-end tests read their databases with it (tests/e2e/lib.bash).
export PATH=$PREFIX/bin:/usr/local/cuda/bin:$PATH
PY=${PYTHON:-python3}

has() { [[ " $PHASES " == *" $1 "* ]]; }
stamp() { echo "== $(date +%T) $*"; }

if has env; then
  {
    stamp env
    nvidia-smi -L
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
    "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"cxx11_abi", torch.compiled_with_cxx11_abi(), "cmake", torch.utils.cmake_prefix_path)'
    c++ --version | head -1
    cmake --version | head -1
    ninja --version
    nvcc --version | tail -1
    nproc
    # Note [NCCL headers] (harness/comm/c10d_compat.h): NCCL groups need the nccl.h the build
    # finds to be of LibTorch's NCCL release.
    "$PY" -c 'import torch; v = torch.cuda.nccl.version(); print("torch nccl", ".".join(map(str, v)) if isinstance(v, tuple) else v)'
    for h in /usr/local/cuda/include/nccl.h /usr/include/nccl.h \
      $("$PY" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include", "nccl.h"))' 2>/dev/null); do
      [ -f "$h" ] && echo "$h: $(grep -E '^#define NCCL_(MAJOR|MINOR|PATCH) ' "$h" | awk '{printf "%s ", $3}')"
    done
  } 2>&1 | tee "$LOG_DIR/env.log"
fi

built=0
if has build; then
  stamp build
  TORCH_CMAKE=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
  {
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOEBENCH_CUDA=ON \
      -DCMAKE_PREFIX_PATH="$TORCH_CMAKE;$PREFIX" -DICU_ROOT="$PREFIX" \
      -DMOEBENCH_TEST_PYTHON="$(command -v "$PY")" &&
      cmake --build "$BUILD_DIR" -j "$JOBS" ${BUILD_TARGETS:+--target $BUILD_TARGETS} -- -k 0
  } >"$LOG_DIR/build.log" 2>&1
  rc=$?
  grep -E "error|Error" "$LOG_DIR/build.log" | head -40
  stamp "build rc=$rc"
  [ $rc -eq 0 ] && built=1
elif [ -x "$BUILD_DIR/moebench" ]; then
  built=1
fi
[ $built -eq 1 ] || exit 1

if has gputest; then
  stamp gputest
  # Each Gpu test in a process of its own: a failed capture or a crash stops that test only.
  (
    cd "$BUILD_DIR" || exit 1
    rc=0
    tests=$(./test_torch --gtest_list_tests --gtest_filter='Gpu.*' |
      awk '/^[^ ]/ {suite=$1} /^  / {print suite $1}')
    [ -n "$tests" ] || { echo "FAILED: no Gpu.* tests listed"; rc=1; }
    for t in $tests; do
      ./test_torch --gtest_filter="$t" || rc=1
    done
    ./test_torch --gtest_filter='GpuBatch*:HostSync*:Autocast*:Device*:StaticPath*' || rc=1
    ctest -R 'e2e[.](train_precision|bench_smoke)$' --output-on-failure || rc=1
    exit $rc
  ) >"$LOG_DIR/gputest.log" 2>&1
  stamp "gputest rc=$?"
  grep -E "^\[sync\]|OK \]|SKIPPED|tests passed" "$LOG_DIR/gputest.log" | head -60
  grep -E "FAILED|Failure" "$LOG_DIR/gputest.log" | head -40
fi

if has test; then
  stamp test
  (cd "$BUILD_DIR" && ctest -LE long -j "$JOBS" --timeout "${TEST_TIMEOUT:-300}" \
    --output-on-failure) >"$LOG_DIR/test.log" 2>&1
  stamp "test rc=$?"
  grep -E "tests passed|Failed|\*\*\*" "$LOG_DIR/test.log" | head -40
fi

if has bench; then
  stamp bench
  for p in fp32 bf16; do
    "$BUILD_DIR/moebench_bench" --device=cuda --precision=$p \
      --benchmark_filter='Router/|Layer/|TrainStep/' --benchmark_min_time=0.2 --train-tokens=gpu \
      --benchmark_out="$LOG_DIR/bench-$p.json" --benchmark_out_format=json ${BENCH_ARGS:-} \
      >"$LOG_DIR/bench-$p.txt" 2>&1
    stamp "bench $p rc=$?"
  done
fi

if has train; then
  stamp train
  # The runs' folders go with their database (a checkpoint names the database it belongs to).
  rm -rf "$LOG_DIR/train.db" "$LOG_DIR"/runs-*
  for size in ${TRAIN_SIZES:-small base}; do
    for p in fp32 bf16; do
      # Both MoE paths (moe_path: dynamic, static = no host reads; docs/gpu.md), and the static
      # one's steps as CUDA graphs (cuda_graph on: Note [Training step graphs]).
      for path in dynamic static graph; do
        tag=$size-$p-$path
        how=(--moe-path $path)
        [ $path = graph ] && how=(--moe-path static --cuda-graph on)
        "$BUILD_DIR/moebench" train --db "$LOG_DIR/train.db" --method switch --size $size \
          --dataset synthetic --device cuda --precision $p "${how[@]}" --max-steps ${TRAIN_STEPS:-60} \
          --seed 1 --eval-every ${TRAIN_STEPS:-60} --run-dir "$LOG_DIR/runs-$tag" >"$LOG_DIR/train-$tag.log" 2>&1
        stamp "train $tag rc=$?"
        tail -3 "$LOG_DIR/train-$tag.log"
      done
    done
  done
fi

if has tables; then
  stamp tables
  {
    for p in bf16 fp32; do
      if [ -s "$LOG_DIR/bench-$p.json" ]; then
        echo "## Benchmarks, $p"
        echo
        "$PY" bench/results_table.py "$LOG_DIR/bench-$p.json"
        echo
      fi
    done
    if [ -s "$LOG_DIR/train.db" ]; then
      echo "## Training (tokens/s and MFU: medians after the first log window)"
      echo
      "$PY" bench/train_table.py "$LOG_DIR/train.db"
    fi
  } >"$LOG_DIR/tables.md" 2>&1
  stamp "tables rc=$?"
  cat "$LOG_DIR/tables.md"
fi
