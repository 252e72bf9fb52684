#!/usr/bin/env bash
# Issue 5's equivalence test: a 2-rank and a 4-rank Gloo run (tiny model, synthetic data, a few
# steps, dropout 0) give the same losses as the one-process run with 2 and 4 virtual workers
# and the same seed (within 2e-4 relative: the ranks compute the same sums in other orders), and
# exactly the same bytes per traffic class and phase (the bytes follow from the routing, which
# is identical). The 2-rank run starts from `moebench launch` with torchrun's variables; the
# 4-rank run from `train --world-size 4`, which emulates 2 nodes of 2 ranks. With dropout 0.1
# too (issue 18): each worker block's masks are drawn from (seed, step, site, block, pass)
# (Note [Dropout masks]), so a rank draws for its sentences what one process draws for them.
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/d.db"
nodrop=(train --size tiny --max-steps 6 --log-every 2 --checkpoint-every 100 --seed 3
        --threads 1 --db "$DB" --quiet)
base=("${nodrop[@]}" --dropout 0)
common=("${base[@]}" --eval-every 100 --valid-sentences 0)

compare() {  # $1 one-process run id, $2 ranks run id, $3 label
  local a="$1" b="$2"
  [ "$(q "$DB" "select status from runs where id='$b'")" = finished ] ||
    fail "$3: the ranks' run did not finish: $(q "$DB" "select error from runs where id='$b'")"
  local n
  n=$(q "$DB" "select count(*) from metrics x join metrics y on x.step = y.step and x.key = y.key
               where x.run_id = '$a' and y.run_id = '$b' and x.key in ('train_loss', 'aux_loss')")
  [ "$n" = 6 ] || fail "$3: expected 6 matching loss rows, got $n"
  local worst
  worst=$(q "$DB" "select max(abs(x.value - y.value) / max(abs(x.value), 1e-9)) from metrics x
                   join metrics y on x.step = y.step and x.key = y.key
                   where x.run_id = '$a' and y.run_id = '$b' and x.key in ('train_loss', 'aux_loss')")
  awk -v w="$worst" 'BEGIN { exit !(w < 2e-4) }' || fail "$3: losses differ by $worst (relative)"
  # Bytes: every (step, layer, phase) row equal in all counters.
  local diff
  diff=$(q "$DB" "select count(*) from comm x left join comm y on x.step = y.step and
                  x.layer = y.layer and x.phase = y.phase and y.run_id = '$b'
                  where x.run_id = '$a' and (y.run_id is null or x.calls != y.calls or
                  x.bytes_local != y.bytes_local or x.bytes_intra_node != y.bytes_intra_node or
                  x.bytes_inter_node != y.bytes_inter_node or x.wire_bytes != y.wire_bytes or
                  x.wire_inter_node != y.wire_inter_node)")
  [ "$diff" = 0 ] || fail "$3: $diff comm rows differ"
  [ "$(q "$DB" "select count(*) from comm where run_id = '$a'")" = \
    "$(q "$DB" "select count(*) from comm where run_id = '$b'")" ] || fail "$3: comm row counts differ"
  [ "$(q "$DB" "select sum(bytes_inter_node) > 0 from comm where run_id = '$b'")" = 1 ] ||
    fail "$3: no bytes counted"
  # Node reach (Note [Node copies]): counts, so equal exactly; the ranks sum the copies and
  # take the most nodes over ranks.
  local nodes
  nodes=$(q "$DB" "select count(*) from metrics x join metrics y on x.step = y.step and
                   x.key = y.key and x.value = y.value where x.run_id = '$a' and
                   y.run_id = '$b' and (x.key like 'moe.%.other_node_copies_per_token' or
                   x.key like 'moe.%.nodes_per_token_max')")
  local want
  want=$(q "$DB" "select count(*) from metrics where run_id = '$a' and
                  (key like 'moe.%.other_node_copies_per_token' or
                   key like 'moe.%.nodes_per_token_max')")
  [ "$want" -gt 0 ] && [ "$nodes" = "$want" ] ||
    fail "$3: node reach metrics: $nodes of $want equal"
  echo "$3: max relative loss difference $worst; comm rows identical"
}

# 2 workers, each its own node.
"$MOEBENCH" "${common[@]}" --method switch --workers 2 --workers-per-node 1
one2=$(q "$DB" "select id from runs where world_size = 1 and method = 'switch'")
"$MOEBENCH" launch --nproc 2 --nodes-of 1 -- "$MOEBENCH" "${common[@]}" --method switch --ranks-per-node 1 \
  > "$WORK/launch2.txt" 2>&1 || fail "2 ranks: $(tail -20 "$WORK/launch2.txt")"
grep -q '^\[rank 1\]' "$WORK/launch2.txt" || true
two=$(q "$DB" "select id from runs where world_size = 2 and method = 'switch'")
[ -n "$two" ] || fail "no 2-rank run recorded: $(tail -20 "$WORK/launch2.txt")"
[ "$(q "$DB" "select json_extract(libs, '$.comm.backend') from runs where id = '$two'")" = gloo ] ||
  fail "the 2-rank run did not use Gloo"
compare "$one2" "$two" "2 ranks"

# The other routers on 2 ranks (THOR draws one expert for the whole batch, so one rank's experts
# get every token and the other's none, expert choice fills per-group capacities, GShard draws
# its second expert, topk drops by score across choices, aux_free moves its bias after every
# step from the load summed over ranks -- here dropless and node-limited to one of the 2
# nodes; base solves a balanced assignment per worker, sinkhorn balances each worker's tokens,
# hash routes by the token ids of each worker's sentences): same losses and bytes as one
# process.
# The default test runs three of them (expert choice's per-group capacities, aux_free's
# node-limited top-k and its bias, hash's token ids; THOR runs below with dropout);
# long_dist_equivalence.sh runs them all, base's and sinkhorn's balanced assignments included.
for method in ${DIST_EQUIVALENCE_METHODS:-expert_choice aux_free hash}; do
  extra=()
  [ "$method" = aux_free ] && extra=(--set node_limit_topk=1 --set bias_update_rate=0.01)
  "$MOEBENCH" "${common[@]}" --method "$method" "${extra[@]}" --workers 2 --workers-per-node 1
  a=$(q "$DB" "select id from runs where world_size = 1 and method = '$method'")
  "$MOEBENCH" "${common[@]}" --method "$method" "${extra[@]}" --world-size 2 --ranks-per-node 1 \
    > "$WORK/$method.txt" 2>&1 || fail "$method on 2 ranks: $(tail -20 "$WORK/$method.txt")"
  b=$(q "$DB" "select id from runs where world_size = 2 and method = '$method'")
  compare "$a" "$b" "$method, 2 ranks"
  if [ "$method" = aux_free ]; then  # node-limited to M = 1: no token reaches both nodes
    for id in "$a" "$b"; do
      [ "$(q "$DB" "select max(value) from metrics where run_id = '$id' and
                    key like 'moe.%.nodes_per_token_max'")" = 1.0 ] ||
        fail "aux_free node-limited to 1 node: a token reached more"
    done
  fi
done

# Dropout 0.1: switch, and THOR, whose two forward passes draw two masks per site.
for method in ${DIST_EQUIVALENCE_DROPOUT_METHODS:-thor}; do
  drop=("${nodrop[@]}" --dropout 0.1 --eval-every 100 --valid-sentences 0 --method "$method")
  "$MOEBENCH" "${drop[@]}" --workers 2 --workers-per-node 1
  a=$(q "$DB" "select id from runs where world_size = 1 and method = '$method' and
               json_extract(spec_json, '$.dropout') = 0.1")
  "$MOEBENCH" "${drop[@]}" --world-size 2 --ranks-per-node 1 > "$WORK/drop-$method.txt" 2>&1 ||
    fail "$method, dropout 0.1, on 2 ranks: $(tail -20 "$WORK/drop-$method.txt")"
  b=$(q "$DB" "select id from runs where world_size = 2 and method = '$method' and
               json_extract(spec_json, '$.dropout') = 0.1")
  compare "$a" "$b" "$method, dropout 0.1, 2 ranks"
done

# Evaluation on ranks (all experts gathered, each rank decoding its share of the batches) gives
# the one-process scores and sentences: validation at steps 3 and 6, test BLEU per language.
ev=("${base[@]}" --valid-sentences 40 --eval-every 3)
"$MOEBENCH" "${ev[@]}" --method switch --workers 2 --workers-per-node 1
a=$(q "$DB" "select id from runs where world_size = 1 and method = 'switch' and
             json_extract(spec_json, '$.valid_sentences') = 40")
"$MOEBENCH" "${ev[@]}" --method switch --world-size 2 --ranks-per-node 1 \
  > "$WORK/eval2.txt" 2>&1 || fail "evaluation on 2 ranks: $(tail -20 "$WORK/eval2.txt")"
b=$(q "$DB" "select id from runs where world_size = 2 and method = 'switch' and
             json_extract(spec_json, '$.valid_sentences') = 40")
n=$(q "$DB" "select count(*) from evals where run_id = '$a'")
[ "$n" -ge 8 ] || fail "expected validation and test rows per language, got $n"
d=$(q "$DB" "select count(*) from evals x left join evals y on y.run_id = '$b' and
             x.step = y.step and x.split = y.split and x.lang = y.lang and x.k = y.k
             where x.run_id = '$a' and (y.run_id is null or abs(x.bleu - y.bleu) > 1e-9 or
             abs(coalesce(x.loss, 0) - coalesce(y.loss, 0)) > 1e-4 * abs(coalesce(x.loss, 1)) or
             x.n_sentences != y.n_sentences)")
[ "$d" = 0 ] || fail "$d evaluation rows differ between one process and 2 ranks"
d=$(q "$DB" "select count(*) from outputs x left join outputs y on y.run_id = '$b' and
             x.split = y.split and x.k = y.k and x.idx = y.idx
             where x.run_id = '$a' and (y.run_id is null or x.hyp != y.hyp)")
[ "$d" = 0 ] || fail "$d decoded test sentences differ between one process and 2 ranks"
echo "evaluation, 2 ranks: $n evaluation rows and every decoded test sentence identical"

# 4 workers in 2 nodes of 2.
"$MOEBENCH" "${common[@]}" --method switch --workers 4 --workers-per-node 2
one4=$(q "$DB" "select id from runs where world_size = 1 and method = 'switch' and
                json_extract(spec_json, '$.workers') = 4")
"$MOEBENCH" "${common[@]}" --method switch --world-size 4 --ranks-per-node 2 > "$WORK/launch4.txt" 2>&1 ||
  fail "4 ranks: $(tail -20 "$WORK/launch4.txt")"
four=$(q "$DB" "select id from runs where world_size = 4")
compare "$one4" "$four" "4 ranks"
[ "$(q "$DB" "select sum(bytes_intra_node) > 0 from comm where run_id = '$four'")" = 1 ] ||
  fail "4 ranks in nodes of 2: no same-node bytes"
# Shared and fine-grained experts (switch, 1 shared, granularity 2: 8 routed experts, 4 per
# rank): the shared FFN is replicated (its gradients all-reduced like the attention's), the
# routed experts exchanged; same losses and bytes as one process.
lay=(--method switch --shared-experts 1 --expert-granularity 2)
"$MOEBENCH" "${common[@]}" "${lay[@]}" --workers 2 --workers-per-node 1
a=$(q "$DB" "select id from runs where world_size = 1 and json_extract(spec_json, '$.shared_experts') = 1")
"$MOEBENCH" "${common[@]}" "${lay[@]}" --world-size 2 --ranks-per-node 1 > "$WORK/layout2.txt" 2>&1 ||
  fail "shared and fine-grained experts on 2 ranks: $(tail -20 "$WORK/layout2.txt")"
b=$(q "$DB" "select id from runs where world_size = 2 and json_extract(spec_json, '$.shared_experts') = 1")
compare "$a" "$b" "switch with shared and fine-grained experts, 2 ranks"
echo "dist_equivalence: ok"
