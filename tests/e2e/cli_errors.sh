#!/usr/bin/env bash
# Bad input gets a clear error; a run that fails is recorded as failed with its reason;
# `query` refuses writes.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
expect_error() {  # expect_error PATTERN ARGS...
  local pattern="$1"; shift
  if "$MOEBENCH" "$@" > "$WORK/out" 2> "$WORK/err"; then fail "expected failure: $*"; fi
  grep -q -- "$pattern" "$WORK/err" || fail "error for '$*' lacks '$pattern': $(cat "$WORK/err")"
}
expect_error "unknown method 'nope'" train --method nope --db "$DB"
expect_error "unknown knob 'bogus' for method switch" train --set bogus=1 --db "$DB"
expect_error "expected a number" train --set capacity_factor=abc --db "$DB"
expect_error "unknown size 'huge'" train --size huge --max-steps 1 --db "$DB"
# A run that starts and then fails is recorded as failed, with the reason.
"$MOEBENCH" train --dataset files --langs de --data-dir "$WORK/missing" --max-steps 1 --db "$DB" \
  --quiet 2> /dev/null && fail "files run on a missing folder succeeded"
[ "$(q "$DB" "select status from runs where error like '%missing%'")" = failed ] ||
  fail "failed run not recorded: $(q "$DB" "select status, error from runs")"
expect_error "refusing a statement that writes" query --db "$DB" "delete from runs"
[ "$(q "$DB" "select count(*) from runs")" -ge 1 ] || fail "query deleted rows"
echo "cli_errors: ok"
