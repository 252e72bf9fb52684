# Shared by the tests of real launchers (dist_mpirun.sh, dist_torchrun.sh); sourced after
# lib.bash. A tiny 2-worker run, once in one process and once on 2 ranks, must record the same
# bytes per class, phase, layer and step. LAUNCH_ARGS has no --db: each call adds its own.
# Dropout 0.1: ranks draw the masks that one process draws for their sentences (Note [Dropout
# masks]), so the routing and the bytes are the same.
DB="$WORK/d.db"
LAUNCH_ARGS=(train --method switch --size tiny --max-steps 4 --log-every 2 --checkpoint-every 100
             --dropout 0.1 --seed 5 --threads 1 --eval-every 100 --valid-sentences 0 --quiet)
# The one-process run with 2 virtual workers on one node: prints its run id.
one_process_run() {
  "$MOEBENCH" "${LAUNCH_ARGS[@]}" --db "$DB" --workers 2 --workers-per-node 2 > "$WORK/one.txt" 2>&1 ||
    fail "one-process run: $(tail -20 "$WORK/one.txt")"
  q "$DB" "select id from runs where world_size = 1"
}
# Fails unless runs $1 (one process) and $2 (ranks) have identical comm rows; $3 labels.
same_bytes() {
  local a="$1" b="$2"
  [ -n "$b" ] || fail "$3: no run of the ranks recorded"
  [ "$(q "$DB" "select status from runs where id='$b'")" = finished ] ||
    fail "$3: the ranks' run did not finish: $(q "$DB" "select error from runs where id='$b'")"
  [ "$(q "$DB" "select json_extract(spec_json, '$.workers_per_node') from runs where id='$b'")" = 2 ] ||
    fail "$3: the ranks' run is not on one node of 2"
  local diff
  diff=$(q "$DB" "select count(*) from comm x left join comm y on x.step = y.step and
                  x.layer = y.layer and x.phase = y.phase and y.run_id = '$b'
                  where x.run_id = '$a' and (y.run_id is null or x.calls != y.calls or
                  x.bytes_local != y.bytes_local or x.bytes_intra_node != y.bytes_intra_node or
                  x.bytes_inter_node != y.bytes_inter_node or x.wire_bytes != y.wire_bytes or
                  x.wire_inter_node != y.wire_inter_node)")
  [ "$diff" = 0 ] || fail "$3: $diff comm rows differ from the one-process run's"
  [ "$(q "$DB" "select count(*) from comm where run_id = '$a'")" = \
    "$(q "$DB" "select count(*) from comm where run_id = '$b'")" ] || fail "$3: comm row counts differ"
  [ "$(q "$DB" "select sum(bytes_intra_node) > 0 and sum(bytes_inter_node) = 0 from comm where run_id = '$b'")" = 1 ] ||
    fail "$3: expected same-node bytes only"
  echo "$3: $(q "$DB" "select count(*) from comm where run_id = '$b'") comm rows identical to one process;" \
    "bytes local/same node/other node: $(q "$DB" "select sum(bytes_local) || '/' || sum(bytes_intra_node) || '/' || sum(bytes_inter_node) from comm where run_id = '$b'")"
}
