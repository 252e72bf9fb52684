#!/usr/bin/env bash
# `moebench route` gives, for every method and a few knob settings, the output recorded before
# issue 17's refactor (tests/e2e/fixtures/route_snapshot.pre-refactor.json).
source "$(dirname "$0")/lib.bash"
/usr/bin/python3 "$(dirname "$0")/route_snapshot.py" "$MOEBENCH" check
