#!/usr/bin/env bash
# End to end: `moebench data prepare l10n` downloads the Debian packages of the l10n recipe
# with apt-get, builds the corpus and prints its sizes (FormatCorpusSizes); a second run is
# served from the cache and yields the same corpus. Skipped (exit 0) where `apt-get download`
# cannot reach the archive. Usage: data_l10n.sh /path/to/moebench
set -euo pipefail

moebench="${1:?usage: data_l10n.sh /path/to/moebench}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v apt-get >/dev/null 2>&1 ||
   ! (cd "$work" && timeout 30 apt-get download -q hello >/dev/null 2>&1); then
  echo "skipped: apt-get download does not work here"
  exit 0
fi
rm -f "$work"/*.deb

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

export MOEBENCH_CACHE="$work/cache"
langs=(de fr ja)

start=$(date +%s)
if ! first="$("$moebench" data prepare l10n --langs de,fr,ja 2>&1)"; then
  echo "$first"
  fail "moebench data prepare l10n exited with an error"
fi
echo "$first"
echo "first run: $(($(date +%s) - start)) s"

for lang in "${langs[@]}"; do
  read -r train valid test < <(awk -v l="$lang" '$1 == l { print $2, $3, $4 }' <<<"$first")
  [[ -n "${train:-}" ]] || fail "no size row for language $lang"
  ((train > 5000)) || fail "$lang: only $train training pairs"
  ((valid > 100 && test > 100)) || fail "$lang: valid=$valid test=$test too small"
done
grep -q '^content_hash [0-9a-f]\{64\}$' <<<"$first" || fail "no content hash printed"

n_debs=$(find "$MOEBENCH_CACHE/l10n/debs" -name '*.deb' | wc -l)
((n_debs >= 10)) || fail "expected the package .debs in the cache, found $n_debs"
find "$MOEBENCH_CACHE/l10n/locale" -path '*/de/LC_MESSAGES/*.mo' | grep -q . ||
  fail "no unpacked German catalogs in the cache"

# The second run must not download (the cache pins the versions) and must agree exactly.
stamp="$work/stamp"
touch "$stamp"
sleep 1
second="$("$moebench" data prepare l10n --langs de,fr,ja 2>&1)" || fail "second run failed"
newer=$(find "$MOEBENCH_CACHE/l10n/debs" -newer "$stamp" -name '*.deb' | wc -l)
((newer == 0)) || fail "the second run downloaded $newer packages again"
table() { grep -E '^(lang|total|content_hash|de|fr|ja) ' <<<"$1"; }
[[ "$(table "$first")" == "$(table "$second")" ]] || fail "the second run built a different corpus"

# A short training run on the corpus records test BLEU per language.
db="$work/r.db"
"$moebench" train --dataset l10n --langs de,fr,ja --vocab-size 4000 --max-steps 3 \
  --log-every 3 --eval-every 3 --valid-sentences 30 --threads 2 --quiet --db "$db" \
  > "$work/train.txt" 2>&1 || fail "l10n training failed: $(tail -5 "$work/train.txt")"
langs_seen=$("$moebench" query --db "$db" --format csv \
  "select group_concat(lang) from (select distinct lang from evals where split = 'test' order by lang)" | tail -1)
[[ "$langs_seen" =~ (de|fr|ja) ]] || fail "no per-language test BLEU: $langs_seen"
echo "ok"
