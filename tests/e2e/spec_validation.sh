#!/usr/bin/env bash
# One validation of the run spec (harness/spec/run_spec_check.h) at every entry point: a bad
# value given as a `train` flag, as a key of a --run-spec JSON file, or in a manifest is refused
# before anything runs, with a message naming the flag or key (and file:line for manifests),
# and leaves the database as it was. Before, --log-every 0 died of SIGFPE leaving the run
# "running", --lr nan and --dropout 1.5 ended in LibTorch stack traces, and --clip-norm -1,
# --dropout 1, --beam 0, --eval-k 99 on 4 experts, lr = inf and smoe k_max = 99 trained and
# recorded results.
source "$(dirname "$0")/lib.bash"
DB="$WORK/v.db"
base=(train --size tiny --dataset synthetic --max-steps 2
      --valid-sentences 0 --db "$DB" --quiet)
"$MOEBENCH" "${base[@]}" --method switch > /dev/null || fail "the valid run failed"
snapshot() { q "$DB" "select count(*) || ':' || group_concat(id || status, ',') from runs" &&
             q "$DB" "select count(*) from metrics"; }
before=$(snapshot)

# flag | expected words of the message
cases=(
  "--log-every 0|--log-every (log_every): must be at least 1, got 0"
  "--eval-every 0|--eval-every (eval_every): must be at least 1"
  "--checkpoint-every 0|--checkpoint-every (checkpoint_every): must be at least 1"
  "--clip-norm -1|--clip-norm (clip_norm): must be a finite number > 0"
  "--dropout 1|--dropout (dropout): must be in [0, 1), got 1.0"
  "--dropout 1.5|--dropout (dropout): must be in [0, 1), got 1.5"
  "--label-smoothing -0.5|--label-smoothing (label_smoothing): must be in [0, 1)"
  "--beam 0|--beam (beam): must be at least 1"
  "--eval-k 99|--eval-k (eval_k): k = 99 exceeds the 4 experts"
  "--lr inf|--lr (lr): must be a finite number > 0, got inf"
  "--lr nan|--lr (lr): must be a finite number > 0, got nan"
  "--length-penalty -1|--length-penalty (length_penalty): must be a finite number >= 0"
  "--lang-temperature 0|--lang-temperature (lang_temperature): must be a finite number > 0"
  "--device-profile tpu|--device-profile (device_profile): unknown device_profile 'tpu'"
  "--device-efficiency 0|--device-efficiency (device_efficiency): must be a fraction"
  "--method smoe_dropout --set k_max=99|--set k_max: must be at most the number of experts (4), got 99"
  "--method uniform --set k=9|--set k: must be at most the number of experts (4), got 9"
)
for c in "${cases[@]}"; do
  flags=${c%%|*} want=${c#*|}
  # shellcheck disable=SC2086
  case "$flags" in --method*) method=() ;; *) method=(--method switch) ;; esac
  if "$MOEBENCH" "${base[@]}" "${method[@]}" $flags > "$WORK/out.txt" 2>&1; then
    fail "$flags was accepted"
  fi
  grep -qF -- "$want" "$WORK/out.txt" || fail "$flags: expected '$want', got: $(cat "$WORK/out.txt")"
  if grep -qiE "terminate called|stack trace|Exception raised from" "$WORK/out.txt"; then
    fail "$flags: a crash, not a message: $(cat "$WORK/out.txt")"
  fi
done
# Several problems are reported at once.
"$MOEBENCH" "${base[@]}" --method switch --beam 0 --lr nan > "$WORK/out.txt" 2>&1 &&
  fail "two bad values accepted"
grep -qF -- "--beam (beam)" "$WORK/out.txt" && grep -qF -- "--lr (lr)" "$WORK/out.txt" ||
  fail "not every problem reported: $(cat "$WORK/out.txt")"

# A run-spec JSON names the key and the file.
printf '{"method": "switch", "size": "tiny", "dataset": "synthetic", "log_every": 0}\n' \
  > "$WORK/spec.json"
"$MOEBENCH" train --run-spec "$WORK/spec.json" --db "$DB" --quiet > "$WORK/out.txt" 2>&1 &&
  fail "the JSON spec was accepted"
grep -qF "key 'log_every' of $WORK/spec.json: must be at least 1" "$WORK/out.txt" ||
  fail "JSON: $(cat "$WORK/out.txt")"

# A manifest: field ranges name file:line:key; relations (knobs against the experts) name the
# run's line too; nothing runs.
cat > "$WORK/m.toml" <<'EOF'
[matrix]
method = ["smoe_dropout"]
[data]
dataset = "synthetic"
[train]
max_steps = 2
lr = inf
[methods.smoe_dropout]
k_max = 99
EOF
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" > "$WORK/out.txt" 2>&1 && fail "the manifest ran"
grep -qE "m.toml:7: train.lr: must be a finite number > 0, got inf" "$WORK/out.txt" ||
  fail "manifest lr: $(cat "$WORK/out.txt")"
sed -i 's/^lr = inf$/lr = 0.001/' "$WORK/m.toml"
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" > "$WORK/out.txt" 2>&1 && fail "the manifest ran"
grep -qE "m.toml:[0-9]+: .*knobs.k_max: must be at most the number of experts \(4\), got 99" \
  "$WORK/out.txt" || fail "manifest k_max: $(cat "$WORK/out.txt")"

[ "$(snapshot)" = "$before" ] || fail "the database changed: $before -> $(snapshot)"
echo "every bad value refused with its flag or key; nothing stored changed"
