// The `l10n` corpus: real human translations from the gettext catalogs of a fixed list of
// Debian packages. English msgids -> msgstrs in many languages; the recipe is
//   1. `apt-get download` each package into <cache>/l10n/debs (skipped when a .deb is there,
//      so a filled cache is reproducible offline and pins the package versions);
//   2. `dpkg-deb -x` it and keep usr/share/locale as <cache>/l10n/locale/<package>_<version>;
//   3. read <lang>/LC_MESSAGES/*.mo with our .mo reader; take each singular pair (msgid,
//      msgstr[0]), context stripped, untranslated entries and the header skipped;
//   4. clean (datasets/l10n_clean.h), drop exact duplicates of (lang, English, translation);
//   5. split by a hash of the cleaned English sentence (datasets/split.h), so an English
//      sentence and all its translations sit in one split.
// The provenance records the packages with versions and .deb hashes, the options, and per
// language how many pairs each rule dropped.
#pragma once

#include <string>
#include <vector>

#include "datasets/corpus.h"
#include "datasets/l10n_clean.h"

namespace moebench {

// The fixed package list: 20 small Debian 12 (bookworm) main packages whose .debs ship
// catalogs for de, fr, es, it, pt_BR, ru, ja and zh_CN (checked with apt-get download +
// dpkg-deb -x; the only gap is gnupg-l10n without pt_BR). About 30 MB of .debs in all.
const std::vector<std::string>& L10nDefaultPackages();

// The languages of the demo manifest and the tests.
const std::vector<std::string>& L10nDefaultLangs();

struct L10nOptions {
  std::vector<std::string> langs = L10nDefaultLangs();  // locale directory names, e.g. "pt_BR"
  std::vector<std::string> packages = L10nDefaultPackages();
  std::string cache_dir;  // empty -> $MOEBENCH_CACHE, or <cwd>/data-cache when unset
  double valid_fraction = 0.05;
  double test_fraction = 0.05;
  L10nCleanOptions clean;
  bool allow_download = true;  // false: a package missing from the cache is an error
};

// One unpacked package: `locale_dir` holds <lang>/LC_MESSAGES/*.mo.
struct L10nPackage {
  std::string name;
  std::string version;
  std::string locale_dir;
  std::string deb_sha256;  // empty when not known (tests)
};

// Steps 1-2: fetches and unpacks what the cache lacks. Throws std::runtime_error with the
// command's output when apt-get or dpkg-deb fails, or when a package ships no translations.
std::vector<L10nPackage> FetchL10nPackages(const L10nOptions& opt);

// Steps 3-5 on already unpacked packages (no network).
ParallelCorpus BuildL10nCorpus(const std::vector<L10nPackage>& packages, const L10nOptions& opt);

// FetchL10nPackages then BuildL10nCorpus.
ParallelCorpus MakeL10nCorpus(const L10nOptions& opt);

}  // namespace moebench
