#!/usr/bin/env bash
# The modeled cluster step of real runs (Note [Compute model]): every log step records the
# step's FLOPs and a compute time from them on the run's device profile, and the modeled step
# is modeled compute + modeled communication, not the CPU's measured compute.
#  - one worker, the dense baseline: compute_modeled_ms = flops_per_step / (125e12 * 0.4) s
#    on the default v100-32gb profile (V100 SXM2 fp16 tensor peak, 40%), no experts;
#  - the same switch run on v100-32gb and h100 counts the same FLOPs, and its compute takes
#    989 / 125 times longer on the V100; its step adds the modeled communication;
#  - a bad profile is refused before anything runs.
source "$(dirname "$0")/lib.bash"
DB="$WORK/c.db"
common=(train --size tiny --dataset synthetic --max-steps 4 --log-every 2 --eval-every 100
        --valid-sentences 0 --seed 2 --threads 1 --db "$DB" --quiet)
metric() {  # run id, key, step -> value
  q "$DB" "select value from metrics where run_id = '$1' and key = '$2' and step = $3"
}
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = (a < 0 ? -a : a);
                                            exit !(d <= 1e-9 * (m > 1 ? m : 1)) }'; }

"$MOEBENCH" "${common[@]}" --method dense
dense=$(q "$DB" "select id from runs where method = 'dense'")
for step in 2 4; do
  f=$(metric "$dense" flops_per_step $step)
  c=$(metric "$dense" compute_modeled_ms $step)
  e=$(metric "$dense" expert_flops_per_step $step)
  awk -v f="$f" 'BEGIN { exit !(f > 1e6) }' || fail "dense: flops_per_step $f at step $step"
  [ "$e" = 0 ] || [ "$e" = 0.0 ] || fail "dense: expert FLOPs $e"
  want=$(awk -v f="$f" 'BEGIN { printf "%.17g", 1000 * f / (125e12 * 0.4) }')
  close "$c" "$want" || fail "dense: compute_modeled_ms $c, expected $want"
done
[ "$(q "$DB" "select count(*) from metrics where run_id = '$dense' and key like 'moe.%'")" = 0 ] ||
  fail "dense: routing metrics recorded"

net=(--workers 4 --workers-per-node 2)
"$MOEBENCH" "${common[@]}" --method switch "${net[@]}"
"$MOEBENCH" "${common[@]}" --method switch "${net[@]}" --device-profile h100
v100=$(q "$DB" "select id from runs where method = 'switch' and spec_json not like '%h100%'")
h100=$(q "$DB" "select id from runs where method = 'switch' and spec_json like '%h100%'")
[ -n "$v100" ] && [ -n "$h100" ] && [ "$v100" != "$h100" ] || fail "expected two switch runs"
for step in 2 4; do
  fv=$(metric "$v100" flops_per_step $step)
  fh=$(metric "$h100" flops_per_step $step)
  [ "$fv" = "$fh" ] || fail "switch: FLOPs differ between profiles: $fv vs $fh"
  ex=$(metric "$v100" expert_flops_per_step $step)
  awk -v e="$ex" -v f="$fv" 'BEGIN { exit !(e > 0 && e < f) }' || fail "expert FLOPs $ex of $fv"
  cv=$(metric "$v100" compute_modeled_ms $step)
  ch=$(metric "$h100" compute_modeled_ms $step)
  close "$(awk -v a="$cv" -v b="$ch" 'BEGIN { printf "%.17g", a / b }')" \
    "$(awk 'BEGIN { printf "%.17g", 989 / 125 }')" || fail "compute ratio $cv / $ch"
  comm=$(metric "$v100" comm_modeled_ms $step)
  awk -v c="$comm" 'BEGIN { exit !(c > 0) }' || fail "switch: comm_modeled_ms $comm"
  s=$(metric "$v100" step_modeled_ms $step)
  close "$s" "$(awk -v a="$cv" -v b="$comm" 'BEGIN { printf "%.17g", a + b }')" ||
    fail "step_modeled_ms $s != $cv + $comm"
done

# A shared node NIC (Note [Network model]) narrower than a rank's own inter-node link: the same
# routing and bytes, a longer modeled communication, the same compute.
"$MOEBENCH" "${common[@]}" --method switch "${net[@]}" --node-nic-gbps 25
nic=$(q "$DB" "select id from runs where method = 'switch' and spec_json like '%node_nic_gbps%'")
[ -n "$nic" ] && [ "$nic" != "$v100" ] || fail "expected a run with a node NIC"
for step in 2 4; do
  for key in comm.other_node_bytes comm.wire_other_node_bytes flops_per_step compute_modeled_ms; do
    [ "$(metric "$nic" $key $step)" = "$(metric "$v100" $key $step)" ] ||
      fail "node NIC: $key differs at step $step"
  done
  a=$(metric "$v100" comm_modeled_ms $step)
  b=$(metric "$nic" comm_modeled_ms $step)
  awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > a) }' ||
    fail "node NIC of 25 Gb/s: comm_modeled_ms $b, not above the per-rank links' $a"
done

if "$MOEBENCH" "${common[@]}" --method switch --device-profile tpu > "$WORK/bad.txt" 2>&1; then
  fail "an unknown device profile was accepted"
fi
grep -q "device_profile 'tpu'" "$WORK/bad.txt" || fail "message: $(cat "$WORK/bad.txt")"
echo "compute model: dense and switch runs modeled as the formulas say"
