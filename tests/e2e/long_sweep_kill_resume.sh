#!/usr/bin/env bash
# The long variant of sweep_kill_resume.sh (ctest label `long`): 20 kills of the sweep, each
# with a random run process killed too.
SWEEP_KILL_REPS=20 SWEEP_KILL_CHILDREN=1 exec bash "$(dirname "$0")/sweep_kill_resume.sh" "$1"
