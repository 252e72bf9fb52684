#!/usr/bin/env bash
# Issue 16's probe cases, one table: every example of bad input the issue lists, through each
# entry point where it applies (a `train` flag, a --run-spec JSON key, a manifest key; the
# query, route, bleu and report commands), must be refused with a message naming the flag, key
# or file (and line), a non-zero exit, no stack trace, and the database byte-identical
# (sha256 before and after each case). With PROBE_TABLE=FILE the cases are also written there
# as a markdown table (entry, input, exit, message) for the notes. The per-command tests
# (spec_validation, route_cli, query_verbs) check the finer points of each message.
source "$(dirname "$0")/lib.bash"
DB="$WORK/p.db"
"$MOEBENCH" train --method switch --size tiny --dataset synthetic --max-steps 2 --log-every 1 \
  --valid-sentences 0 --threads 1 --db "$DB" --quiet > "$WORK/valid.txt" 2>&1 ||
  fail "the valid run failed: $(tail -5 "$WORK/valid.txt")"
sum() { sha256sum "$DB" | cut -d' ' -f1; }
before=$(sum)
TABLE="$WORK/table.md"
printf '| entry | input | exit | message |\n|---|---|---|---|\n' > "$TABLE"
n=0
# probe ENTRY INPUT PATTERN COMMAND...: COMMAND must fail with PATTERN (grep -E) in its output.
probe() {
  local entry="$1" input="$2" pattern="$3"; shift 3
  local rc=0
  "$@" > "$WORK/out.txt" 2>&1 < "${PROBE_STDIN:-/dev/null}" || rc=$?
  [ "$rc" != 0 ] || fail "$entry $input was accepted: $(head -5 "$WORK/out.txt")"
  grep -qE -- "$pattern" "$WORK/out.txt" ||
    fail "$entry $input: expected /$pattern/, got: $(head -20 "$WORK/out.txt")"
  if grep -qiE "terminate called|Exception raised from|stack trace|frame #[0-9]" "$WORK/out.txt"; then
    fail "$entry $input: a crash, not a message: $(head -20 "$WORK/out.txt")"
  fi
  [ "$(sum)" = "$before" ] || fail "$entry $input: the database changed"
  # The message: the line that matched, shortened, with the table's separator escaped.
  local msg
  msg=$(grep -m1 -E -- "$pattern" "$WORK/out.txt" | sed "s|$WORK/||g; s/|/\\\\|/g" | cut -c1-160)
  printf '| %s | `%s` | %s | %s |\n' "$entry" "${input//|/\\|}" "$rc" "$msg" >> "$TABLE"
  n=$((n + 1))
}

train=(train --size tiny --dataset synthetic --max-steps 2 --valid-sentences 0 --threads 1
       --db "$DB" --quiet)
# Run-spec fields: key | manifest section | flag value | JSON value | TOML value | message.
fields=(
  "log_every|train|0|0|0|must be at least 1, got 0"
  "eval_every|train|0|0|0|must be at least 1, got 0"
  "checkpoint_every|train|0|0|0|must be at least 1, got 0"
  "clip_norm|train|-1|-1|-1.0|must be a finite number > 0"
  "dropout|train|1|1.0|1.0|must be in \[0, 1\)"
  "dropout|train|1.5|1.5|1.5|must be in \[0, 1\)"
  "label_smoothing|train|-0.5|-0.5|-0.5|must be in \[0, 1\)"
  "beam|train|0|0|0|must be at least 1 \(1 = greedy\), got 0"
  "eval_k|train|99|[99]|[99]|k = 99 exceeds the 4 experts"
  "lr|train|inf|-|inf|must be a finite number > 0, got inf"
  "lr|train|nan|-|nan|must be a finite number > 0, got nan"
  "length_penalty|train|-1|-1|-1.0|must be a finite number >= 0"
  "lang_temperature|data|0|0|0.0|must be a finite number > 0"
  "device_profile|topology|tpu|\"tpu\"|\"tpu\"|unknown device_profile 'tpu'"
  "device_efficiency|topology|0|0|0.0|must be a fraction"
)
for c in "${fields[@]}"; do
  IFS='|' read -r key section flag_v json_v toml_v msg <<< "$c"
  flag="--${key//_/-}"
  probe "train flag" "$flag $flag_v" "$flag \($key\): $msg" \
    "$MOEBENCH" "${train[@]}" --method switch "$flag" "$flag_v"
  if [ "$json_v" != - ]; then  # JSON has no inf or nan
    printf '{"method": "switch", "size": "tiny", "dataset": "synthetic", "max_steps": 2, "%s": %s}\n' \
      "$key" "$json_v" > "$WORK/spec.json"
    probe "--run-spec JSON" "\"$key\": $json_v" "key '$key' of .*spec.json: $msg" \
      "$MOEBENCH" train --run-spec "$WORK/spec.json" --db "$DB" --quiet
  fi
  # Ranges name the key's line; relations (eval_k against the experts) the run's line.
  printf '[matrix]\nmethod = ["switch"]\n[%s]\n%s = %s\n' "$section" "$key" "$toml_v" > "$WORK/m.toml"
  where="m.toml:4: $section.$key"
  [ "$key" != eval_k ] || where="m.toml:[0-9]+: .*$key"
  probe "manifest" "[$section] $key = $toml_v" "$where: $msg" \
    "$MOEBENCH" sweep "$WORK/m.toml" --db "$DB"
done
# A knob against the experts: smoe_dropout's k_max = 99 with 4 experts.
probe "train flag" "--method smoe_dropout --set k_max=99" \
  "--set k_max: must be at most the number of experts \(4\), got 99" \
  "$MOEBENCH" "${train[@]}" --method smoe_dropout --set k_max=99
printf '{"method": "smoe_dropout", "size": "tiny", "dataset": "synthetic", "knobs": {"k_max": "99"}}\n' \
  > "$WORK/spec.json"
probe "--run-spec JSON" '"knobs": {"k_max": "99"}' \
  "k_max: must be at most the number of experts \(4\), got 99" \
  "$MOEBENCH" train --run-spec "$WORK/spec.json" --db "$DB" --quiet
printf '[matrix]\nmethod = ["smoe_dropout"]\n[data]\ndataset = "synthetic"\n[methods.smoe_dropout]\nk_max = 99\n' \
  > "$WORK/m.toml"
probe "manifest" "[methods.smoe_dropout] k_max = 99" \
  "m.toml:[0-9]+: .*knobs.k_max: must be at most the number of experts \(4\), got 99" \
  "$MOEBENCH" sweep "$WORK/m.toml" --db "$DB"
probe "train flag" "--method uniform --set k=9" \
  "--set k: must be at most the number of experts \(4\), got 9" \
  "$MOEBENCH" "${train[@]}" --method uniform --set k=9
# A manifest with several bad keys: every problem at once, each with its line.
printf '[matrix]\nmethod = ["switch"]\n[train]\nlog_every = 0\nbeam = 0\ndropout = 1.5\nbogus = 1\n' \
  > "$WORK/m.toml"
probe "manifest" "log_every = 0, beam = 0, dropout = 1.5, bogus = 1" "m.toml:7: train.bogus" \
  "$MOEBENCH" sweep "$WORK/m.toml" --db "$DB"
for want in "m.toml:4: train.log_every" "m.toml:5: train.beam" "m.toml:6: train.dropout"; do
  grep -qF "$want" "$WORK/out.txt" || fail "several bad keys: '$want' not reported: $(cat "$WORK/out.txt")"
done

# Queries: a filter nested 20000 deep, an unknown params key.
deep=$(printf '(%.0s' $(seq 20000))
probe "runs --where" "20000 x '('" "--where: parentheses and NOT nested deeper than 32 levels" \
  "$MOEBENCH" runs --db "$DB" --where "${deep}1"
probe "runs --where" "params.colour = 'red'" "unknown key 'params.colour'" \
  "$MOEBENCH" runs --db "$DB" --where "params.colour = 'red'"
# route: a logit beyond float32.
echo '{"method":"switch","logits":[[0,1e39],[0,0]]}' > "$WORK/route.json"
PROBE_STDIN="$WORK/route.json" probe "route" '{"logits": [[0, 1e39], [0, 0]]}' \
  "logits row 0 holds 1e\+39, not a finite float32" "$MOEBENCH" route
# bleu: a negative smoothing value; a folder as the reference.
echo "the cat sat" > "$WORK/ref.txt"
PROBE_STDIN="$WORK/ref.txt" probe "bleu" "--smooth-value -1" \
  "smooth-value.* must be a finite number >= 0, got -1" \
  "$MOEBENCH" bleu "$WORK/ref.txt" -s floor --smooth-value=-1
PROBE_STDIN="$WORK/ref.txt" probe "bleu" "a folder as the reference" \
  "reference file '.*' is a folder" "$MOEBENCH" bleu "$WORK"
# report --out naming a file.
touch "$WORK/afile"
probe "report" "--out FILE" "--out .*is a file; give a folder|is a file; give a folder" \
  "$MOEBENCH" report --db "$DB" --out "$WORK/afile"
# A line longer than the model's positions (the tiny model's 1024): its file and line named.
mkdir -p "$WORK/data"
for split in train valid test; do
  for i in 1 2 3 4; do echo "a small sentence number $i"; done > "$WORK/data/$split.en"
  for i in 1 2 3 4; do echo "ein kleiner Satz Nummer $i"; done > "$WORK/data/$split.de"
done
long=$(printf 'w%d ' $(seq 1500))
sed -i "3s/.*/$long/" "$WORK/data/train.en"
probe "train --dataset files" "train.en line 3: 1500 words" "train.en:3: .*longer than" \
  "$MOEBENCH" train --method switch --size tiny --dataset files --data-dir "$WORK/data" \
  --langs de --max-steps 2 --valid-sentences 0 --vocab-size 60 --threads 1 --db "$WORK/files.db" \
  --quiet

[ "$(sum)" = "$before" ] || fail "the database changed"
[ -z "${PROBE_TABLE:-}" ] || cp "$TABLE" "$PROBE_TABLE"
cat "$TABLE"
echo "probe_cases: ok ($n cases refused with their flag, key or file named; the database unchanged)"
