#!/usr/bin/env bash
# A bad manifest is refused before anything runs, every problem listed with file:line: key.
source "$(dirname "$0")/lib.bash"
cat > "$WORK/bad.toml" <<'EOF'
[matrix]
method = ["switch", "no_such_method"]
seed = []
[train]
max_step = 10
EOF
if "$MOEBENCH" sweep "$WORK/bad.toml" --db "$WORK/x.db" > "$WORK/out.txt" 2> "$WORK/err.txt"; then
  fail "a bad manifest was accepted"
fi
grep -q "3 problems in the sweep manifest" "$WORK/err.txt" || fail "count: $(cat "$WORK/err.txt")"
grep -q "bad.toml:2: matrix.method: unknown method 'no_such_method'" "$WORK/err.txt" || fail "method"
grep -q "bad.toml:3: matrix.seed: empty list" "$WORK/err.txt" || fail "empty list"
grep -q "bad.toml:5: train.max_step: unknown key (did you mean 'max_steps'?)" "$WORK/err.txt" ||
  fail "unknown key: $(cat "$WORK/err.txt")"
[ -f "$WORK/x.db" ] && fail "a bad manifest touched the database"
echo "sweep_manifest_errors: ok"
