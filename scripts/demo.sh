#!/usr/bin/env bash
# The main job: builds moebench and runs the demo on the built-in data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
DB=${DB:-results/moebench.db}
./build/moebench train --method switch --size tiny --dataset synthetic --max-steps 300 \
  --seed 1 --db "$DB" --workers 4 --workers-per-node 2
./build/moebench runs --db "$DB"
echo "demo: results are in $DB (try: ./build/moebench show --db $DB <run id>)"
