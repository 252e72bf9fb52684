# Shared by the end-to-end scripts: $1 is the moebench binary.
set -euo pipefail
MOEBENCH="$1"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export MOEBENCH_CACHE="$WORK/cache"
fail() { echo "FAIL: $*" >&2; exit 1; }
# Prints the single value of a one-column, one-row query.
q() { "$MOEBENCH" query --db "$1" "$2" --format csv | tail -n +2; }
