#!/usr/bin/env bash
# The --slurm scripts on a real Slurm: a throwaway single-node cluster (munged, slurmctld and
# slurmd from Debian's munge and slurm-wlm, its own slurm.conf, state folders under $WORK and
# ports on the loopback) runs a small sweep's arrays submitted with plain `sbatch` and no
# moebench variables (no MOEBENCH_BIN, no MOEBENCH_CACHE: env -i keeps only PATH and SLURM_CONF,
# the throwaway cluster's address). The sweep mixes 1-rank runs and a 2-rank run (srun inside its
# task); `collect` merges them and every run must be finished exactly once with its metrics.
# Then a task that fails before training: its Slurm output says so and where the log is, and
# collect exits non-zero naming it. The daemons are stopped by PID.
# Installs nothing: `bash scripts/setup.sh --with-slurm` installs the daemons (CI does).
source "$(dirname "$0")/lib.bash"
require_gloo
MOEBENCH=$(realpath "$MOEBENCH")  # the test changes folders
skip() { echo "SKIP: $*"; exit 77; }
for tool in munged slurmctld slurmd sbatch squeue sinfo srun; do
  command -v "$tool" > /dev/null || skip "$tool is not installed (bash scripts/setup.sh --with-slurm)"
done

C="$WORK/cluster"
mkdir -p "$C/munge" "$C/state" "$C/spool" "$C/log"
chmod 700 "$C/munge"
PIDS=()
CLUSTER_UP=0
stop_daemons() {
  # A job still running (a failed check) is cancelled first, on this cluster only (SLURM_CONF).
  if [ "$CLUSTER_UP" = 1 ]; then
    SLURM_CONF="$C/slurm.conf" timeout 10 scancel -u "$(id -un)" 2> /dev/null || true
  fi
  # Newest first: slurmd, slurmctld, munged; each by the PID it was started with.
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2> /dev/null || true; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 1 100); do kill -0 "${PIDS[$i]}" 2> /dev/null || break; sleep 0.1; done
    kill -9 "${PIDS[$i]}" 2> /dev/null || true
  done
}
trap 'stop_daemons; rm -rf "$WORK"' EXIT
cannot_start() {
  echo "--- logs of the throwaway cluster"
  tail -n 20 "$C"/log/* 2> /dev/null || true
  skip "the throwaway Slurm cluster cannot start here: $*"
}

# munge: its own key and socket.
head -c 1024 /dev/urandom > "$C/munge/key"
chmod 600 "$C/munge/key"
munged --foreground --force --socket="$C/munge/sock" --key-file="$C/munge/key" \
  --log-file="$C/log/munged.log" --pid-file="$C/munge/pid" --seed-file="$C/munge/seed" \
  > "$C/log/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -S "$C/munge/sock" ] && break; sleep 0.1; done
[ -S "$C/munge/sock" ] || cannot_start "munged made no socket"

read -r CTLD_PORT SLURMD_PORT < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
# The node is "localhost" on 127.0.0.1: the ranks meet on the first host of the node list, which
# must resolve wherever the test runs (a machine's own name need not).
NODE=localhost
ME=$(id -un)
CPUS=$(nproc)
cat > "$C/slurm.conf" << EOF
ClusterName=moebenchtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$ME
SlurmdUser=$ME
AuthType=auth/munge
AuthInfo=socket=$C/munge/sock
CredType=cred/munge
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$C/slurm.conf"
slurmctld -D -f "$SLURM_CONF" > "$C/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N "$NODE" -f "$SLURM_CONF" > "$C/log/slurmd.out" 2>&1 &
PIDS+=($!)
up=0
for _ in $(seq 1 600); do
  if [ "$(sinfo -h -n "$NODE" -o %t 2> /dev/null)" = idle ]; then up=1; break; fi
  for p in "${PIDS[@]}"; do kill -0 "$p" 2> /dev/null || cannot_start "a daemon exited (pid $p)"; done
  sleep 0.1
done
[ "$up" = 1 ] || cannot_start "node $NODE never became idle: $(sinfo 2>&1)"
CLUSTER_UP=1
echo "slurm_real: cluster up (slurmctld :$CTLD_PORT, slurmd :$SLURMD_PORT, $CPUS CPUs)"

# Submits a script as a user would, with nothing of moebench's in the environment; prints the
# job id.
submit() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SLURM_CONF="$SLURM_CONF" sbatch "$1" |
    sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p'
}
# Waits (up to 5 minutes) until none of the given jobs is in the queue.
wait_jobs() {
  local ids
  ids=$(IFS=,; echo "$*")
  for _ in $(seq 1 1500); do
    [ -z "$(squeue -h -j "$ids" 2> /dev/null)" ] && return 0
    sleep 0.2
  done
  fail "jobs $ids still queued after 5 minutes: $(squeue 2>&1)"
}

cat > "$WORK/m.toml" << 'EOF'
[sweep]
name = "real"
[matrix]
method = ["switch"]
seed = [1, 2]
world_size = [1, 2]
[data]
dataset = "synthetic"
[train]
max_steps = 6
tokens_per_batch = 256
log_every = 3
eval_every = 6
valid_sentences = 0
EOF
SDIR="$WORK/sweeps/real"
# Run from elsewhere: nothing may depend on the folder sbatch is called from.
mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere"
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/main.db" --sweep-dir "$SDIR" --slurm "$WORK/real.sbatch" \
  --cpus-per-run "$CPUS" > "$WORK/gen.txt" || fail "--slurm failed: $(cat "$WORK/gen.txt")"
cat "$WORK/gen.txt"
S1="$WORK/real.sbatch"
S2="$WORK/real.ranks2.sbatch"
[ -f "$S1" ] && [ -f "$S2" ] || fail "expected one script per rank count: $(ls "$WORK")"
# Per run: a 1-rank run gets all the CPUs; a 2-rank run gets them split over its 2 tasks.
grep -qx '#SBATCH --ntasks=1' "$S1" || fail "1-rank script: $(grep SBATCH "$S1")"
grep -qx "#SBATCH --cpus-per-task=$CPUS" "$S1" || fail "1-rank cpus: $(grep SBATCH "$S1")"
grep -qx '#SBATCH --ntasks=2' "$S2" || fail "2-rank script: $(grep SBATCH "$S2")"
grep -qx "#SBATCH --cpus-per-task=$((CPUS / 2))" "$S2" || fail "2-rank cpus: $(grep SBATCH "$S2")"
grep -q "moebench collect '$SDIR' --db '$WORK/main.db'" "$S1" || fail "collect hint: $(grep collect "$S1")"

J1=$(submit "$S1")
J2=$(submit "$S2")
[ -n "$J1" ] && [ -n "$J2" ] || fail "sbatch did not submit: '$J1' '$J2'"
wait_jobs "$J1" "$J2"
ls "$SDIR/slurm"
outs=$(ls "$SDIR"/slurm/*.out | wc -l)
[ "$outs" = 4 ] || fail "expected 4 array task outputs, got $outs"
for f in "$SDIR"/slurm/*.out; do
  grep -q "its log: $SDIR/" "$f" || fail "$f does not say where the run's log is: $(cat "$f")"
  grep -q "FAILED" "$f" && fail "a task failed: $(cat "$f"); $(tail -n 20 "$SDIR"/*/train.log)"
done
[ -d "$WORK/elsewhere/data-cache" ] && fail "a task made data-cache/ in sbatch's working directory"
[ "$(q "$WORK/main.db" "select count(*) from runs" 2> /dev/null || echo 0)" = 0 ] ||
  fail "array tasks wrote to the main database"

"$MOEBENCH" collect "$SDIR" --db "$WORK/main.db" > "$WORK/c.txt" || fail "collect failed: $(cat "$WORK/c.txt")"
cat "$WORK/c.txt"
[ "$(q "$WORK/main.db" "select count(*) from runs")" = 4 ] || fail "runs: $(q "$WORK/main.db" "select count(*) from runs")"
[ "$(q "$WORK/main.db" "select count(*) from runs where status = 'finished' and sweep_id like 'real-%'")" = 4 ] ||
  fail "not every run finished and tagged: $("$MOEBENCH" runs --db "$WORK/main.db")"
[ "$(q "$WORK/main.db" "select count(*) from runs where world_size = 2")" = 2 ] || fail "2-rank runs"
# Exactly once: one train_loss row per logged step (3 and 6) for every run, one start per run.
[ "$(q "$WORK/main.db" "select count(*) from metrics where key = 'train_loss'")" = 8 ] ||
  fail "train_loss rows: $(q "$WORK/main.db" "select count(*) from metrics where key = 'train_loss'")"
[ "$(q "$WORK/main.db" "select count(*) from (select 1 from metrics group by run_id, step, key having count(*) > 1)")" = 0 ] ||
  fail "duplicated metric rows"
for log in "$SDIR"/*/train.log; do
  [ "$(grep -c '^=== .* array task' "$log")" = 1 ] || fail "$log: not exactly one attempt: $(cat "$log")"
done
# The 2-rank runs ran as two Slurm tasks: rank 0 recorded traffic between the ranks.
[ "$(q "$WORK/main.db" "select count(*) from comm c join runs r on r.id = c.run_id where r.world_size = 2 and c.bytes_intra_node + c.bytes_inter_node > 0")" -gt 0 ] ||
  fail "the 2-rank runs recorded no traffic between ranks"

# A task that fails before training (its spec is unreadable): Slurm's output says so and where
# the log is; collect merges the rest and exits non-zero naming the task.
cat > "$WORK/bad.toml" << 'EOF'
[sweep]
name = "bad"
[matrix]
method = ["switch"]
[data]
dataset = "synthetic"
[train]
max_steps = 2
tokens_per_batch = 256
valid_sentences = 0
EOF
BDIR="$WORK/sweeps/bad"
"$MOEBENCH" sweep "$WORK/bad.toml" --db "$WORK/main.db" --sweep-dir "$BDIR" --slurm "$WORK/bad.sbatch" \
  > /dev/null || fail "--slurm (bad) failed"
BAD=$(bash -c "eval \"\$(sed -n '/^RUNS=(/,/^)/p' '$WORK/bad.sbatch')\"; printf '%s' \"\${RUNS[0]}\"")
echo '{ not json' > "$BDIR/$BAD/spec.json"
J3=$(submit "$WORK/bad.sbatch")
wait_jobs "$J3"
OUT="$BDIR/slurm/${J3}_0.out"
[ -f "$OUT" ] || fail "no Slurm output $OUT: $(ls "$BDIR/slurm")"
grep -q "its log: $BDIR/$BAD/train.log" "$OUT" || fail "the failed task's output names no log: $(cat "$OUT")"
grep -q "FAILED" "$OUT" || fail "the failed task's output does not say it failed: $(cat "$OUT")"
grep -q "spec.json" "$OUT" || fail "the failed task's output does not show the error: $(cat "$OUT")"
rc=0
"$MOEBENCH" collect "$BDIR" --db "$WORK/main.db" > "$WORK/c2.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "collect exited 0 with a task missing: $(cat "$WORK/c2.txt")"
grep -q "$BAD" "$WORK/c2.txt" || fail "collect does not name the missing task's run: $(cat "$WORK/c2.txt")"
echo "slurm_real: ok"
