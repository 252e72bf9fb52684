#!/usr/bin/env bash
# Builds moebench and runs every test in the default set (unit, integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900 -LE long
