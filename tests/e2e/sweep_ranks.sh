#!/usr/bin/env bash
# A manifest run on ranks ([topology] world_size = 2): the local runner starts it (its train
# process launches the 2 ranks), it finishes on Gloo with the sweep's run id, and a Slurm
# script gives its array task 2 tasks under srun.
source "$(dirname "$0")/lib.bash"
require_gloo
cat > "$WORK/m.toml" <<'EOF2'
[sweep]
name = "ranks"
[matrix]
method = ["switch"]
[data]
dataset = "synthetic"
[train]
max_steps = 4
tokens_per_batch = 512
log_every = 2
eval_every = 4
valid_sentences = 0
[topology]
world_size = 2
workers_per_node = 1
EOF2
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/s.db" --jobs 1 > "$WORK/out.txt" 2>&1 ||
  fail "sweep failed: $(tail -20 "$WORK/out.txt")"
[ "$(q "$WORK/s.db" "select count(*) from runs where status = 'finished' and world_size = 2")" = 1 ] ||
  fail "no finished 2-rank run: $(q "$WORK/s.db" "select status, error from runs")"
[ "$(q "$WORK/s.db" "select json_extract(libs, '$.comm.backend') from runs")" = gloo ] ||
  fail "the run did not use Gloo"
[ "$(q "$WORK/s.db" "select json_extract(spec_json, '$.workers') from runs")" = 2 ] ||
  fail "workers does not follow world_size"
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/s2.db" --slurm "$WORK/job.sbatch" > /dev/null ||
  fail "--slurm failed"
grep -qx '#SBATCH --ntasks=2' "$WORK/job.sbatch" || fail "ntasks: $(grep SBATCH "$WORK/job.sbatch")"
grep -qx 'RANKS=(2)' "$WORK/job.sbatch" || fail "RANKS: $(grep RANKS "$WORK/job.sbatch")"
echo "sweep_ranks: ok"
