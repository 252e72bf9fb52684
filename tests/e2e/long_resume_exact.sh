#!/usr/bin/env bash
# The long variant of resume_exact.sh (ctest label `long`): switch as well as THOR and aux_free
# (the default test keeps the two whose resume restores the most state: THOR's generators,
# aux_free's selection bias).
RESUME_EXACT_METHODS="switch thor aux_free" exec bash "$(dirname "$0")/resume_exact.sh" "$1"
