#!/usr/bin/env bash
# `moebench route`: routing decisions for hand-built logits, checked against hand computation.
source "$(dirname "$0")/lib.bash"
route() { echo "$1" | "$MOEBENCH" route; }
json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# expect LABEL REQUEST EXPR WANT: routes REQUEST (left in $out for further checks) and fails
# with LABEL unless the Python expression EXPR of its JSON output d prints WANT.
expect() {
  out=$(route "$2")
  [ "$(echo "$out" | json_get "$3")" = "$4" ] || fail "$1: $out"
}

# Switch, uniform router (all logits equal): aux loss exactly 1; tokens go to expert 0
# (argmax ties -> first); capacity 2 keeps tokens 0, 1 and drops 2, 3.
out=$(route '{"method":"switch","logits":[[0,0],[0,0],[0,0],[0,0]],"capacity":2}')
[ "$(echo "$out" | json_get 'd["aux_loss"]')" = 1.0 ] || fail "switch aux: $out"
[ "$(echo "$out" | json_get '[a["token"] for a in d["assignments"]]')" = "[0, 1]" ] || fail "switch kept: $out"
[ "$(echo "$out" | json_get '[x["token"] for x in d["dropped"]]')" = "[2, 3]" ] || fail "switch dropped: $out"
[ "$(echo "$out" | json_get 'd["assignments"][0]["weight"]')" = 0.5 ] || fail "switch weight: $out"

# Capacity from the formula: cf 1.0, 4 tokens, 2 experts, min_capacity 0 -> ceil(2) = 2.
out=$(route '{"method":"switch","logits":[[1,0],[1,0],[1,0],[0,1]],"capacity_factor":1.0,"eval_capacity_factor":1.0,"min_capacity":0}')
[ "$(echo "$out" | json_get 'd["capacity"]')" = 2 ] || fail "switch capacity: $out"
[ "$(echo "$out" | json_get 'd["tokens_per_expert"]')" = "[2, 1]" ] || fail "switch load: $out"

# GShard, policy all: first choices fill both experts before second choices.
expect "gshard" '{"method":"gshard","logits":[[0,2],[0,2],[2,0],[2,0]],"capacity":2,"second_policy":"all","training":true}' \
  'sorted(set(x["choice"] for x in d["dropped"]))' "[1]"

# Expert choice: 2 experts, capacity (k) 1 each: expert 0 takes token 1, expert 1 token 0.
expect "ec" '{"method":"expert_choice","logits":[[0,3],[3,0],[0,0]],"capacity":1}' \
  'sorted((a["expert"], a["token"]) for a in d["assignments"])' "[(0, 1), (1, 0)]"

# topk (DeepSpeed topkgating rules), k = 2 at capacity 1: t0 p = (0.35, 0.40, 0.25), t1 p =
# (0.50, 0.45, 0.05). drop_policy probs: t1's higher scores keep both experts (its second choice
# included), t0 loses both; weights renormalised over the kept: 0.5/0.95, 0.45/0.95. position:
# t0, the earlier token, keeps both. GShard would keep both first choices instead.
two='"logits":[[-1.0498221,-0.9162907,-1.3862944],[-0.6931472,-0.7985077,-2.9957323]]'
expect "topk probs" '{"method":"topk",'"$two"',"k":2,"capacity":1,"training":true}' \
  '[(a["token"], a["expert"], round(a["weight"], 6)) for a in d["assignments"]]' "[(1, 0, 0.526316), (1, 1, 0.473684)]"
# Aux loss E/k * sum(me * ce): me = (0.425, 0.425, 0.15), ce = (1, 1, 0) -> 1.5 * 0.85 = 1.275.
[ "$(echo "$out" | json_get 'round(d["aux_loss"], 6)')" = 1.275 ] || fail "topk aux: $out"
expect "topk position" '{"method":"topk",'"$two"',"k":2,"capacity":1,"drop_policy":"position","training":true}' \
  '[(a["token"], a["expert"]) for a in d["assignments"]]' "[(0, 1), (0, 0)]"
# The same logits at the same capacity with k = 1: each token's first choice only.
expect "topk k=1" '{"method":"topk",'"$two"',"k":1,"capacity":1,"training":true}' \
  '[(a["token"], a["expert"], round(a["weight"], 6)) for a in d["assignments"]]' "[(0, 1, 0.4), (1, 0, 0.5)]"
# Capacity from the formula: max(0, ceil(k * 1.0 * 2 / 3)) = 2 for k = 2, 1 for k = 1.
out=$(route '{"method":"topk",'"$two"',"k":2,"min_capacity":0,"training":true}')
[ "$(echo "$out" | json_get 'd["capacity"]')" = 2 ] || fail "topk capacity k=2: $out"
out=$(route '{"method":"topk",'"$two"',"k":1,"min_capacity":0,"training":true}')
[ "$(echo "$out" | json_get 'd["capacity"]')" = 1 ] || fail "topk capacity k=1: $out"
# Dropless: no capacity, every choice kept, rows per expert as counted (e0 2, e1 2).
expect "topk dropless" '{"method":"topk",'"$two"',"k":2,"dropless":true,"training":true}' \
  '(d["capacity"], d["tokens_per_expert"], len(d["dropped"]))' "(0, [2, 2, 0], 0)"
# Sigmoid with renormalisation over the chosen k: s = (0.9, 0.6, 0.1, 0.2) -> 0.6, 0.4; x 2.5.
sig='"logits":[[2.1972246,0.4054651,-2.1972246,-1.3862944]]'
expect "topk sigmoid" '{"method":"topk",'"$sig"',"score_func":"sigmoid","route_scale":2.5,"dropless":true}' \
  '[(a["expert"], round(a["weight"], 6)) for a in d["assignments"]]' "[(0, 1.5), (1, 1.0)]"
expect "aux_free" '{"method":"aux_free",'"$sig"'}' \
  '[(a["expert"], round(a["weight"], 6)) for a in d["assignments"]]' "[(0, 0.6), (1, 0.4)]"
# Node-limited, 4 workers in 2 nodes (experts 0-3 on node 0), M = 1: unrestricted t0 takes
# experts 0 and 5, t1 6 and 2; limited to one node, both stay on node 0 (sigmoid node scores
# 1.2510 > 1.1350 and 1.9527 > 1.2623).
nl='"logits":[[4,-1,-2,-3,-3.5,3,-2.5,-1.5],[-1.5,-2.5,4,3.5,-1,-2,5,-3]],"workers":4,"workers_per_node":2,"score_func":"sigmoid","dropless":true'
expect "topk unrestricted" '{"method":"topk",'"$nl"'}' \
  'sorted((a["token"], a["expert"]) for a in d["assignments"])' "[(0, 0), (0, 5), (1, 2), (1, 6)]"
expect "topk node-limited" '{"method":"topk",'"$nl"',"node_limit_topk":1}' \
  'sorted((a["token"], a["expert"]) for a in d["assignments"])' "[(0, 0), (0, 1), (1, 2), (1, 3)]"

# BASE: scores [[3,0],[2,0],[1,0],[0,0]] train to the balanced optimum [0,0,1,1] (3+2+0+0 = 5)
# and infer greedily to expert 0; the weight is sigmoid(affinity): sigmoid(3) = 0.952574.
base='"logits":[[3,0],[2,0],[1,0],[0,0]]'
expect "base train" '{"method":"base",'"$base"',"training":true}' \
  'sorted((a["token"], a["expert"]) for a in d["assignments"])' "[(0, 0), (1, 0), (2, 1), (3, 1)]"
[ "$(echo "$out" | json_get 'd["tokens_per_expert"]')" = "[2, 2]" ] || fail "base load: $out"
echo "$out" | json_get '[a for a in d["assignments"] if a["token"] == 0][0]["weight"]' |
  awk '{ exit !($1 > 0.952574 - 1e-6 && $1 < 0.952574 + 1e-6) }' || fail "base weight: $out"
expect "base exact" '{"method":"base",'"$base"',"base_assign":"exact","training":true}' \
  'd["tokens_per_expert"]' "[2, 2]"
expect "base eval" '{"method":"base",'"$base"'}' \
  'd["tokens_per_expert"]' "[4, 0]"

# Sinkhorn: logits [[2,0],[1,0],[0,0],[-1,0]] balance to [0,0,1,1] in training (greedy:
# [0,0,0,1], the tie to the first expert);
# weights sigmoid of the original logit (token 0: sigmoid(2) = 0.880797).
sk='"logits":[[2,0],[1,0],[0,0],[-1,0]]'
expect "sinkhorn train" '{"method":"sinkhorn",'"$sk"',"training":true}' \
  'sorted((a["token"], a["expert"]) for a in d["assignments"])' "[(0, 0), (1, 0), (2, 1), (3, 1)]"
echo "$out" | json_get '[a for a in d["assignments"] if a["token"] == 0][0]["weight"]' |
  awk '{ exit !($1 > 0.880797 - 1e-6 && $1 < 0.880797 + 1e-6) }' || fail "sinkhorn weight: $out"
[ "$(echo "$out" | json_get 'd["aux_loss"]')" = None ] || fail "sinkhorn has an aux loss: $out"
expect "sinkhorn eval" '{"method":"sinkhorn",'"$sk"'}' \
  'd["tokens_per_expert"]' "[3, 1]"

# Hash: routes by "token_ids", not by the logits; ids 0..3 over 2 experts are two blocks of 2
# ids, each a permutation of the experts (random_balanced): 2 tokens each; a repeated id goes
# to the same expert; weight 1.
expect "hash load" '{"method":"hash","logits":[[9,0],[9,0],[9,0],[9,0]],"token_ids":[0,1,2,3]}' \
  'd["tokens_per_expert"]' "[2, 2]"
[ "$(echo "$out" | json_get 'set(a["weight"] for a in d["assignments"])')" = "{1.0}" ] || fail "hash weight: $out"
out=$(route '{"method":"hash","logits":[[0,0],[0,0],[0,0]],"token_ids":[17,5,17],"seed":4}')
[ "$(echo "$out" | json_get 'len(set(a["expert"] for a in d["assignments"] if a["token"] in (0, 2)))')" = 1 ] ||
  fail "hash repeated id: $out"

# Errors: an unknown knob and THOR (no router).
if route '{"method":"switch","logits":[[0,0]],"bogus":1}' 2> "$WORK/err"; then fail "bogus knob accepted"; fi
grep -q "unknown knob 'bogus'" "$WORK/err" || fail "bad error: $(cat "$WORK/err")"
if route '{"method":"thor","logits":[[0,0]]}' 2> "$WORK/err"; then fail "thor routed logits"; fi

# Bad input (issue 16): refused with a message naming the key, exit non-zero, never a stack
# trace or an internal function's name.
refuse() {  # refuse LABEL JSON PATTERN
  if route "$2" > "$WORK/out" 2> "$WORK/err"; then fail "$1 accepted: $(cat "$WORK/out")"; fi
  grep -q -- "$3" "$WORK/err" || fail "$1: expected '$3' in: $(cat "$WORK/err")"
  if grep -q -E "Exception raised|frame #|terminate called|LocalComm|MakeTokenBatches" "$WORK/err"; then
    fail "$1: internal detail in: $(cat "$WORK/err")"
  fi
  [ "$(wc -l < "$WORK/err")" -le 2 ] || fail "$1: long message: $(cat "$WORK/err")"
}
refuse "1e39 logit" '{"method":"switch","logits":[[0,1e39],[0,0]]}' 'logits row 0 holds 1e+39, not a finite float32'
refuse "-1e39 logit" '{"method":"gshard","logits":[[0,0],[-1e39,0]]}' 'logits row 1 holds'
refuse "1e309 logit" '{"method":"switch","logits":[[0,1e309]]}' 'not valid JSON\|logits row 0 holds'
refuse "negative capacity" '{"method":"switch","logits":[[0,0]],"capacity":-1}' '"capacity" must be >= 0, got -1'
refuse "capacity string" '{"method":"gshard","logits":[[0,0]],"capacity":"2"}' '"capacity" must be an integer'
refuse "k 0" '{"method":"smoe_dropout","logits":[[0,0]],"k":0}' '"k" must be >= 1, got 0'
refuse "k above experts" '{"method":"smoe_dropout","logits":[[0,0]],"k":99}' '"k" = 99 exceeds the 2 experts'
refuse "uniform k above experts" '{"method":"uniform","logits":[[0,0]],"k":9}' 'knob k = 9 exceeds the 2 experts'
refuse "uniform k 0" '{"method":"uniform","logits":[[0,0]],"k":0}' 'knob k: must be >= 1'
refuse "ec k above tokens" '{"method":"expert_choice","logits":[[0,0],[1,0]],"k":3}' '"k" = 3 exceeds the 2 tokens'
refuse "smoe eval_k above experts" '{"method":"smoe_dropout","logits":[[0,0]],"eval_k":5}' 'knob eval_k = 5 exceeds the 2 experts'
refuse "method not a string" '{"method":5,"logits":[[0,0]]}' '"method" must be a string'
refuse "pad value" '{"method":"switch","logits":[[0,0],[0,0]],"pad":[1,2]}' '"pad" entries must be 0 or 1'
refuse "pad not array" '{"method":"switch","logits":[[0,0]],"pad":1}' '"pad" must be an array'
refuse "training not bool" '{"method":"switch","logits":[[0,0]],"training":"yes"}' '"training" must be true or false'
refuse "seed negative" '{"method":"switch","logits":[[0,0]],"seed":-3}' '"seed" must be >= 0'
refuse "step float" '{"method":"switch","logits":[[0,0]],"step":1.5}' '"step" must be an integer'
refuse "workers not dividing" '{"method":"gating_dropout","logits":[[0,0]],"workers":3}' '"workers" (3) must divide the 2 experts'
refuse "workers 0" '{"method":"gating_dropout","logits":[[0,0]],"workers":0}' '"workers" must be >= 1'
refuse "group out of range" '{"method":"gating_dropout","logits":[[0,0]],"workers":2,"group":2}' '"group" must be in \[0, workers)'
refuse "logits not rows" '{"method":"switch","logits":[1,2]}' 'logits row 0 is not an array'
refuse "logits missing" '{"method":"switch"}' '"logits" must be a non-empty'
refuse "knob value" '{"method":"switch","logits":[[0,0]],"capacity_factor":"big"}' 'knob switch.capacity_factor: expected a number'
refuse "gating second_policy" '{"method":"gating_dropout","logits":[[0,0]],"second_policy":"x"}' 'knob second_policy: expected random, all or sampling'
refuse "ec capacity 0" '{"method":"expert_choice","logits":[[0,0]],"capacity":0}' '"capacity" (each expert'"'"'s k for expert_choice) must be >= 1'
refuse "ec negative capacity" '{"method":"expert_choice","logits":[[0,0]],"capacity":-2}' '"capacity" must be >= 0, got -2'
refuse "gating workers 3" '{"method":"gating_dropout","logits":[[0,0]],"workers":3,"training":true,"p":1}' '"workers" (3) must divide'
refuse "thor" '{"method":"thor","logits":[[0,0]]}' 'route: method thor has no router'
refuse "topk score_func" '{"method":"topk","logits":[[0,0]],"score_func":"tanh"}' 'knob score_func: expected softmax | sigmoid'
refuse "topk k above experts" '{"method":"topk","logits":[[0,0]],"k":3}' 'knob k = 3 exceeds the 2 experts'
refuse "node limit M not dividing k" '{"method":"topk","logits":[[0,0,0,0]],"k":2,"node_limit_topk":3,"node_limit_groups":4}' 'node_score sum_topk needs M to divide k'
refuse "workers_per_node" '{"method":"topk","logits":[[0,0]],"workers":2,"workers_per_node":3}' '"workers_per_node" must be in \[1, workers\]'
refuse "hash without ids" '{"method":"hash","logits":[[0,0]]}' 'give "token_ids"'
refuse "hash ids count" '{"method":"hash","logits":[[0,0]],"token_ids":[1,2]}' '"token_ids" has 2 entries for 1 tokens'
refuse "hash negative id" '{"method":"hash","logits":[[0,0]],"token_ids":[-1]}' '"token_ids" entries must be integers >= 0'
refuse "hash kind" '{"method":"hash","logits":[[0,0]],"token_ids":[1],"hash_kind":"balanced"}' 'needs the training split'
refuse "base k in training" '{"method":"base","logits":[[0,0]],"training":true,"k":2}' 'base assigns one expert per token in training'
refuse "sinkhorn k above experts" '{"method":"sinkhorn","logits":[[0,0]],"k":3}' 'knob k = 3 exceeds the 2 experts'
echo "route_cli: ok"
