#!/usr/bin/env bash
# The main job: builds moebench, runs the demo sweep (the six seed methods and the dense baseline, tiny models, the
# l10n corpus en->de, built on first use with apt-get download; about 10 minutes on 2 idle cores)
# and writes its report with the claims table (experiments/demo.toml lists the 14 claims it targets).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
DB=${DB:-results/moebench.db}
OUT=${OUT:-results/demo-report}
./build/moebench sweep experiments/demo.toml --db "$DB" --jobs 2
./build/moebench runs --db "$DB" --sweep demo
./build/moebench report --db "$DB" --sweep demo --out "$OUT"
echo "demo: results in $DB; report in $OUT/index.html (summary: $OUT/summary.md)"
