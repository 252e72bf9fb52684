#!/usr/bin/env bash
# The long variant of dist_equivalence.sh (ctest label `long`): every router on 2 ranks against
# one process, and dropout 0.1 with switch as well as THOR.
DIST_EQUIVALENCE_METHODS="thor expert_choice gshard topk aux_free base sinkhorn hash" \
  DIST_EQUIVALENCE_DROPOUT_METHODS="switch thor" \
  exec bash "$(dirname "$0")/dist_equivalence.sh" "$1"
