#include "datasets/l10n.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

#include "datasets/charset.h"
#include "datasets/mo_reader.h"
#include "datasets/split.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

constexpr int kDropReasons = 6;  // the values of L10nDropReason

bool IsUtf8Charset(const std::string& charset) {
  std::string lower;
  for (char c : charset) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // No charset, ASCII, or the unfilled template "CHARSET": read as UTF-8, which
  // LooksLikeMojibake then checks pair by pair.
  return lower.empty() || lower == "utf-8" || lower == "utf8" || lower == "ascii" ||
         lower == "us-ascii" || lower == "charset";  // "charset" is the unfilled template
}

void CheckLang(const std::string& lang) {
  bool ok = !lang.empty();
  for (char c : lang) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '@' || c == '-');
  }
  if (!ok) throw std::runtime_error("l10n: '" + lang + "' is not a locale name like de or pt_BR");
}

std::vector<fs::path> SortedMoFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".mo") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct LangStats {
  int64_t pairs = 0;  // singular pairs with a translation, before cleaning
  int64_t dropped[kDropReasons] = {0, 0, 0, 0, 0, 0};
  int64_t duplicates = 0;
  int64_t kept = 0;
  int64_t catalogs = 0;
};

}  // namespace

const std::vector<std::string>& L10nDefaultPackages() {
  static const std::vector<std::string> kPackages = {"apt",
                                                     "aptitude-common",
                                                     "coreutils",
                                                     "cpio",
                                                     "diffutils",
                                                     "dpkg",
                                                     "findutils",
                                                     "gettext",
                                                     "gnupg-l10n",
                                                     "grep",
                                                     "libc-l10n",
                                                     "libglib2.0-data",
                                                     "libgtk-3-common",
                                                     "make",
                                                     "mc-data",
                                                     "nano",
                                                     "sed",
                                                     "tar",
                                                     "util-linux-locales",
                                                     "wget"};
  return kPackages;
}

const std::vector<std::string>& L10nDefaultLangs() {
  static const std::vector<std::string> kLangs = {"de",    "fr", "es", "it",
                                                  "pt_BR", "ru", "ja", "zh_CN"};
  return kLangs;
}

ParallelCorpus BuildL10nCorpus(const std::vector<L10nPackage>& packages, const L10nOptions& opt) {
  if (opt.langs.empty()) throw std::runtime_error("l10n: no languages requested");
  std::set<std::string> unique_langs;
  for (const std::string& lang : opt.langs) {
    CheckLang(lang);
    if (!unique_langs.insert(lang).second) {
      throw std::runtime_error("l10n: language '" + lang + "' is listed twice");
    }
  }

  ParallelCorpus corpus;
  corpus.name = "l10n";
  corpus.langs = opt.langs;
  std::map<std::string, LangStats> stats;
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  nlohmann::json converted_catalogs = nlohmann::json::array();
  nlohmann::json skipped_catalogs = nlohmann::json::array();

  for (const L10nPackage& package : packages) {
    for (const std::string& lang : opt.langs) {
      LangStats& lang_stats = stats[lang];
      for (const fs::path& file :
           SortedMoFiles(fs::path(package.locale_dir) / lang / "LC_MESSAGES")) {
        MoCatalog catalog = ReadMoFile(file.string());
        std::string charset = MoHeaderCharset(catalog.header);
        if (!IsUtf8Charset(charset)) {
          try {
            for (MoMessage& message : catalog.messages) {
              message.msgid = ConvertToUtf8(message.msgid, charset);
              for (std::string& form : message.msgstr) form = ConvertToUtf8(form, charset);
            }
            converted_catalogs.push_back({{"file", file.string()}, {"charset", charset}});
          } catch (const std::runtime_error& error) {
            skipped_catalogs.push_back({{"file", file.string()}, {"error", error.what()}});
            continue;
          }
        }
        ++lang_stats.catalogs;
        for (const MoMessage& message : catalog.messages) {
          if (message.msgstr.empty() || message.msgstr[0].empty()) continue;  // untranslated
          ++lang_stats.pairs;
          std::string src = message.msgid;
          std::string tgt = message.msgstr[0];
          L10nDropReason reason = CleanL10nPair(src, tgt, opt.clean);
          if (reason != L10nDropReason::kKept) {
            ++lang_stats.dropped[static_cast<int>(reason)];
            continue;
          }
          if (!seen.insert({lang, src, tgt}).second) {
            ++lang_stats.duplicates;
            continue;
          }
          ++lang_stats.kept;
          ParallelExample example{lang, std::move(src), std::move(tgt)};
          switch (SplitForSource(example.src, opt.valid_fraction, opt.test_fraction)) {
            case Split::kTrain:
              corpus.train.push_back(std::move(example));
              break;
            case Split::kValid:
              corpus.valid.push_back(std::move(example));
              break;
            case Split::kTest:
              corpus.test.push_back(std::move(example));
              break;
          }
        }
      }
    }
  }

  std::vector<std::string> package_names;
  nlohmann::json package_records = nlohmann::json::array();
  for (const L10nPackage& package : packages) {
    package_names.push_back(package.name);
    package_records.push_back(
        {{"name", package.name}, {"version", package.version}, {"deb_sha256", package.deb_sha256}});
  }
  nlohmann::json lang_records = nlohmann::json::object();
  for (const std::string& lang : opt.langs) {
    const LangStats& s = stats[lang];
    if (s.kept == 0) {
      std::string names;
      for (const std::string& name : package_names) names += (names.empty() ? "" : ", ") + name;
      throw std::runtime_error("l10n: no usable translations for language '" + lang +
                               "' in the packages [" + names + "]");
    }
    nlohmann::json dropped = nlohmann::json::object();
    for (int r = 1; r < kDropReasons; ++r) {
      dropped[L10nDropReasonName(static_cast<L10nDropReason>(r))] = s.dropped[r];
    }
    dropped["duplicate"] = s.duplicates;
    lang_records[lang] = {
        {"catalogs", s.catalogs}, {"pairs", s.pairs}, {"kept", s.kept}, {"dropped", dropped}};
  }
  corpus.provenance = {{"recipe", "l10n-v1"},
                       {"packages", package_records},
                       {"langs", opt.langs},
                       {"valid_fraction", opt.valid_fraction},
                       {"test_fraction", opt.test_fraction},
                       {"min_words", opt.clean.min_words},
                       {"max_words", opt.clean.max_words},
                       {"per_lang", lang_records},
                       {"converted_catalogs", converted_catalogs},
                       {"skipped_catalogs", skipped_catalogs}};
  corpus.content_hash = ComputeCorpusHash(corpus);
  return corpus;
}

ParallelCorpus MakeL10nCorpus(const L10nOptions& opt) {
  return BuildL10nCorpus(FetchL10nPackages(opt), opt);
}

}  // namespace moebench
