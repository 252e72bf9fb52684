#!/usr/bin/env bash
# scripts/cuda_syntax_check.sh on one translation unit with CUDA-only code (graph steps): it
# compiles as committed, and a copy without the include whose absence it found on 2026-12-08
# (the host InverseSqrtLr, called only by the CUDA build's Replay) fails, naming the file and
# the line. Skipped without a CUDA toolkit's headers (nccl.h under CUDA_HOME, default
# /usr/local/cuda) or on a CUDA build, where the real compiler checks this code.
source "$(dirname "$0")/lib.bash"
SRC=${MOEBENCH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$(dirname "$MOEBENCH")
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if [ ! -f "$CUDA_HOME/include/nccl.h" ] || [ ! -f "$CUDA_HOME/include/cuda_runtime_api.h" ]; then
  echo "SKIP: no CUDA headers with nccl.h under $CUDA_HOME/include"
  exit 77
fi
if "$MOEBENCH" --version | grep -q "cuda: yes"; then
  echo "SKIP: a CUDA build compiles this code itself"
  exit 77
fi
[ -f "$BUILD/compile_commands.json" ] || fail "no compile_commands.json in $BUILD"

# A build folder holding one entry: step_graphs.cpp as the build compiles it, or a copy of it.
one_entry() { # DIR FILE
  mkdir -p "$1"
  /usr/bin/python3 - "$BUILD/compile_commands.json" "$SRC/harness/train/step_graphs.cpp" "$2" \
    >"$1/compile_commands.json" <<'PY'
import json, sys
db, real, file = sys.argv[1:4]
entry = next(e for e in json.load(open(db)) if e["file"] == real)
entry["command"] = entry["command"].replace(real, file)
entry["file"] = file
print(json.dumps([entry]))
PY
}

one_entry "$WORK/good" "$SRC/harness/train/step_graphs.cpp"
out=$(bash "$SRC/scripts/cuda_syntax_check.sh" "$WORK/good" 2>&1) || fail "step_graphs.cpp: $out"
grep -q "all 1 files compile" <<<"$out" || fail "unexpected output: $out"

grep -q '#include "harness/train/lr_schedule.h"' "$SRC/harness/train/step_graphs.cpp" ||
  fail "step_graphs.cpp no longer includes lr_schedule.h: update this test"
sed '/#include "harness\/train\/lr_schedule.h"/d' "$SRC/harness/train/step_graphs.cpp" \
  >"$WORK/step_graphs.cpp"
one_entry "$WORK/bad" "$WORK/step_graphs.cpp"
set +e
out=$(bash "$SRC/scripts/cuda_syntax_check.sh" "$WORK/bad" 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] || fail "exit $rc without the include: $out"
grep -q "FAILED $WORK/step_graphs.cpp" <<<"$out" || fail "the file is not named: $out"
grep -q "step_graphs.cpp:[0-9]*:[0-9]*: error: .*const at::Tensor&" <<<"$out" ||
  fail "the error is not shown: $out"
grep -q "1 of 1 files do not compile" <<<"$out" || fail "no summary: $out"
echo "OK: the syntax check passes the committed file and fails the copy without the include"
