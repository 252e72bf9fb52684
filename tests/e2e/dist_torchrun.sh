#!/usr/bin/env bash
# torchrun as its users call it (Debian's python3-torch; skipped where it is not installed):
# `torchrun --nproc_per_node 2 --no_python moebench train ...` without --standalone. torchrun's
# elastic agent then serves the rendezvous store itself (TORCHELASTIC_USE_AGENT_STORE=True) and
# rank 0 must connect to it as a client (today it binds the same port: "Address already in
# use"). The spellings with underscores are the ones torch 1.13 accepts (2.x accepts both).
# Debian 12's torchrun (torch 1.13 under Python 3.11) also fails in Std.from_str for the default
# "--redirects 0 --tee 0" (Python 3.11 no longer lists the zero IntFlag member): naming a
# stream, "--redirects 1 --tee 1", avoids it (stdout teed to the console, prefixed by rank).
# The bytes by class equal the one-process run's, on the dynamic and the static MoE path.
source "$(dirname "$0")/lib.bash"
source "$(dirname "$0")/launchers.bash"
require_gloo
command -v torchrun > /dev/null || { echo "SKIP: torchrun is not installed (apt-get install python3-torch)"; exit 77; }
one=$(one_process_run)  # before any other one-process run
# A free port for the agent's store (torchrun's default, 29500, may be taken by another job).
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
TR=(torchrun --redirects 1 --tee 1 --nproc_per_node 2)
"${TR[@]}" --master_port "$port" --no_python "$MOEBENCH" "${LAUNCH_ARGS[@]}" --db "$DB" \
  > "$WORK/tr.txt" 2>&1 || fail "torchrun: $(tail -30 "$WORK/tr.txt")"
two=$(q "$DB" "select id from runs where world_size = 2")  # the only one yet
same_bytes "$one" "$two" "torchrun --nproc_per_node 2"
n=$(grep -c "results in" "$WORK/tr.txt" || true)
[ "$n" = 1 ] || fail "expected one line saying where the results are (rank 0's), got $n: $(cat "$WORK/tr.txt")"
# The static-shape MoE path under the same torchrun call: the ranks size each other's buffers
# from the batch (Note [Static-shape path]) and record the one-process static run's bytes.
"$MOEBENCH" "${LAUNCH_ARGS[@]}" --db "$DB" --workers 2 --workers-per-node 2 --moe-path static \
  > "$WORK/one-static.txt" 2>&1 || fail "one-process static run: $(tail -20 "$WORK/one-static.txt")"
one_static=$(q "$DB" "select id from runs where world_size = 1 and spec_json like '%static%'")
"${TR[@]}" --master_port "$(free_port)" --no_python "$MOEBENCH" "${LAUNCH_ARGS[@]}" --moe-path static \
  --db "$DB" > "$WORK/tr-static.txt" 2>&1 || fail "torchrun, static: $(tail -30 "$WORK/tr-static.txt")"
two_static=$(q "$DB" "select id from runs where world_size = 2 and spec_json like '%static%'")
same_bytes "$one_static" "$two_static" "torchrun --nproc_per_node 2, moe_path static"
# --standalone (c10d rendezvous: rank 0 serves the store) still works.
"${TR[@]}" --standalone --no_python "$MOEBENCH" "${LAUNCH_ARGS[@]}" --db "$WORK/s.db" \
  > "$WORK/tr2.txt" 2>&1 || fail "torchrun --standalone: $(tail -30 "$WORK/tr2.txt")"
[ "$(q "$WORK/s.db" "select count(*) from runs where world_size = 2 and status = 'finished'")" = 1 ] ||
  fail "torchrun --standalone: the run did not finish"
echo "dist_torchrun: ok"
