#!/usr/bin/env bash
# `moebench route`: routing decisions for hand-built logits, checked against hand computation.
source "$(dirname "$0")/lib.bash"
route() { echo "$1" | "$MOEBENCH" route; }
json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

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
out=$(route '{"method":"gshard","logits":[[0,2],[0,2],[2,0],[2,0]],"capacity":2,"second_policy":"all","training":true}')
[ "$(echo "$out" | json_get 'sorted(set(x["choice"] for x in d["dropped"]))')" = "[1]" ] || fail "gshard: $out"

# Expert choice: 2 experts, capacity (k) 1 each: expert 0 takes token 1, expert 1 token 0.
out=$(route '{"method":"expert_choice","logits":[[0,3],[3,0],[0,0]],"capacity":1}')
[ "$(echo "$out" | json_get 'sorted((a["expert"], a["token"]) for a in d["assignments"])')" = "[(0, 1), (1, 0)]" ] || fail "ec: $out"

# Errors: an unknown knob and THOR (no router).
if route '{"method":"switch","logits":[[0,0]],"bogus":1}' 2> "$WORK/err"; then fail "bogus knob accepted"; fi
grep -q "unknown knob 'bogus'" "$WORK/err" || fail "bad error: $(cat "$WORK/err")"
if route '{"method":"thor","logits":[[0,0]]}' 2> "$WORK/err"; then fail "thor routed logits"; fi
echo "route_cli: ok"
