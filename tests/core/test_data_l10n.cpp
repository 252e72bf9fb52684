// The l10n recipe on hand-built catalogs (no network); the download itself is covered by
// tests/e2e/data_l10n.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "datasets/l10n.h"
#include "harness/util/fs.h"
#include "harness/util/shell.h"
#include "test_data_mo_builder.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;
using moebench::testing::BuildMo;
using moebench::testing::kUtf8Header;

class L10nTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("moebench-l10n-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
             std::to_string(::getpid()));
    RemoveTree(root_);
  }
  void TearDown() override { RemoveTree(root_); }

  // Writes <root>/<package>/<lang>/LC_MESSAGES/<domain>.mo and returns the package entry.
  L10nPackage WriteCatalog(const std::string& package, const std::string& lang,
                           const std::string& domain,
                           const std::vector<std::pair<std::string, std::string>>& entries) {
    fs::path dir = root_ / package / lang / "LC_MESSAGES";
    fs::create_directories(dir);
    std::ofstream(dir / (domain + ".mo"), std::ios::binary) << BuildMo(entries, false);
    return {package, "1.0-" + package, (root_ / package).string(), ""};
  }

  L10nOptions Options(std::vector<std::string> langs) {
    L10nOptions opt;
    opt.langs = std::move(langs);
    opt.cache_dir = (root_ / "cache").string();
    return opt;
  }

  fs::path root_;
};

TEST_F(L10nTest, ReadsCleansAndRecordsProvenance) {
  L10nPackage pkg =
      WriteCatalog("pkga", "de", "pkga",
                   {{"", kUtf8Header},
                    {"Cannot open file '%s'",
                     "Datei \xC2\xBB%s\xC2\xAB kann nicht ge\xC3\xB6"
                     "ffnet werden"},
                    {"_Open the door",
                     "T\xC3\xBCr _\xC3\xB6"
                     "ffnen"},
                    {"Yes", "Ja"},               // too short
                    {"Not translated yet", ""},  // untranslated entry, not counted
                    {"GNU General Public License", "GNU General Public License"},  // copied
                    {std::string("%d new file\0%d new files", 24),
                     std::string("%d neue Datei\0%d neue Dateien", 29)},
                    {"menu\x04Quit the program", "Programm beenden"}});
  ParallelCorpus corpus = BuildL10nCorpus({pkg}, Options({"de"}));
  EXPECT_EQ(corpus.name, "l10n");
  std::map<std::string, std::string> pairs;
  for (const auto* split : {&corpus.train, &corpus.valid, &corpus.test}) {
    for (const ParallelExample& example : *split) {
      EXPECT_EQ(example.lang, "de");
      pairs[example.src] = example.tgt;
    }
  }
  std::map<std::string, std::string> expected = {{"Cannot open file",
                                                  "Datei kann nicht ge\xC3\xB6"
                                                  "ffnet werden"},
                                                 {"Open the door",
                                                  "T\xC3\xBCr \xC3\xB6"
                                                  "ffnen"},
                                                 {"new file", "neue Datei"},
                                                 {"Quit the program", "Programm beenden"}};
  EXPECT_EQ(pairs, expected);
  const nlohmann::json& de = corpus.provenance.at("per_lang").at("de");
  EXPECT_EQ(de.at("pairs"), 6);  // the empty msgstr is not a pair
  EXPECT_EQ(de.at("kept"), 4);
  EXPECT_EQ(de.at("dropped").at("too_short"), 1);
  EXPECT_EQ(de.at("dropped").at("untranslated"), 1);
  EXPECT_EQ(corpus.provenance.at("packages")[0].at("name"), "pkga");
  EXPECT_EQ(corpus.provenance.at("packages")[0].at("version"), "1.0-pkga");
  EXPECT_EQ(corpus.content_hash, ComputeCorpusHash(corpus));
}

TEST_F(L10nTest, DropsExactDuplicatesAcrossPackagesButKeepsVariants) {
  L10nPackage a = WriteCatalog("pkga", "fr", "a",
                               {{"", kUtf8Header}, {"Save the file", "Enregistrer le fichier"}});
  L10nPackage b = WriteCatalog("pkgb", "fr", "b",
                               {{"", kUtf8Header},
                                {"Save the file", "Enregistrer le fichier"},
                                {"_Save the file", "Sauvegarder le fichier"}});
  ParallelCorpus corpus = BuildL10nCorpus({a, b}, Options({"fr"}));
  EXPECT_EQ(corpus.train.size() + corpus.valid.size() + corpus.test.size(), 2u);
  EXPECT_EQ(corpus.provenance.at("per_lang").at("fr").at("dropped").at("duplicate"), 1);
}

TEST_F(L10nTest, ConvertsLegacyCharsetCatalogs) {
  L10nPackage pkg = WriteCatalog("pkga", "ja", "a",
                                 {{"", "Content-Type: text/plain; charset=EUC-JP\n"},
                                  {"Japan and books", "\xC6\xFC\xCB\xDC"}});
  ParallelCorpus corpus = BuildL10nCorpus({pkg}, Options({"ja"}));
  std::vector<ParallelExample> all = corpus.train;
  all.insert(all.end(), corpus.valid.begin(), corpus.valid.end());
  all.insert(all.end(), corpus.test.begin(), corpus.test.end());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].tgt, "\xE6\x97\xA5\xE6\x9C\xAC");
  EXPECT_EQ(corpus.provenance.at("converted_catalogs").size(), 1u);
}

TEST_F(L10nTest, SplitsByEnglishSoNoSentenceIsInTwoSplits) {
  std::vector<std::pair<std::string, std::string>> de = {{"", kUtf8Header}};
  std::vector<std::pair<std::string, std::string>> ru = {{"", kUtf8Header}};
  for (int i = 0; i < 400; ++i) {
    std::string n = std::to_string(i);
    de.push_back({"open window number " + n, "Fenster Nummer " + n + " offen"});
    ru.push_back({"open window number " + n, "\xD0\xBE\xD0\xBA\xD0\xBD\xD0\xBE " + n});
  }
  L10nPackage pkg = WriteCatalog("pkga", "de", "a", de);
  WriteCatalog("pkga", "ru", "a", ru);
  L10nOptions opt = Options({"de", "ru"});
  opt.valid_fraction = 0.1;
  opt.test_fraction = 0.1;
  ParallelCorpus corpus = BuildL10nCorpus({pkg}, opt);
  std::map<std::string, int> split_of;
  std::map<std::string, int> langs_of;
  int s = 0;
  for (const auto* split : {&corpus.train, &corpus.valid, &corpus.test}) {
    for (const ParallelExample& example : *split) {
      auto inserted = split_of.insert({example.src, s});
      ASSERT_EQ(inserted.first->second, s) << example.src << " is in two splits";
      ++langs_of[example.src];
    }
    ++s;
  }
  EXPECT_EQ(split_of.size(), 400u);
  for (const auto& [src, n] : langs_of) ASSERT_EQ(n, 2) << src;
  EXPECT_GT(corpus.valid.size(), 40u);  // about 80 (2 langs x 40 sentences)
  EXPECT_LT(corpus.valid.size(), 130u);
  EXPECT_GT(corpus.test.size(), 40u);
  EXPECT_LT(corpus.test.size(), 130u);
}

TEST_F(L10nTest, LanguageWithoutTranslationsIsAnError) {
  L10nPackage pkg =
      WriteCatalog("pkga", "de", "a", {{"", kUtf8Header}, {"Open the door", "T\xC3\xBCr auf"}});
  try {
    BuildL10nCorpus({pkg}, Options({"de", "xx"}));
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("'xx'"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("pkga"), std::string::npos) << error.what();
  }
  EXPECT_THROW(BuildL10nCorpus({pkg}, Options({"de", "de"})), std::runtime_error);
  EXPECT_THROW(BuildL10nCorpus({pkg}, Options({"../de"})), std::runtime_error);
  EXPECT_THROW(BuildL10nCorpus({pkg}, Options({})), std::runtime_error);
}

TEST_F(L10nTest, FetchWithoutDownloadNamesTheMissingPackage) {
  L10nOptions opt = Options({"de"});
  opt.packages = {"coreutils"};
  opt.allow_download = false;
  try {
    FetchL10nPackages(opt);
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("'coreutils'"), std::string::npos) << error.what();
  }
  opt.packages = {"bad name; rm -rf /"};
  EXPECT_THROW(FetchL10nPackages(opt), std::runtime_error);
  opt.packages = {};
  EXPECT_THROW(FetchL10nPackages(opt), std::runtime_error);
}

TEST(L10nDefaults, ListThePackagesAndLanguages) {
  EXPECT_GE(L10nDefaultPackages().size(), 10u);
  EXPECT_LE(L10nDefaultPackages().size(), 20u);
  std::set<std::string> langs(L10nDefaultLangs().begin(), L10nDefaultLangs().end());
  for (const char* lang : {"de", "fr", "es", "it", "pt_BR", "ru", "ja", "zh_CN"}) {
    EXPECT_EQ(langs.count(lang), 1u) << lang;
  }
}

TEST(Shell, QuotesForSh) {
  EXPECT_EQ(ShellQuote("plain"), "'plain'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  CommandResult result = RunCommand("printf %s " + ShellQuote("it's $HOME") + "; exit 3");
  EXPECT_EQ(result.output, "it's $HOME");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(RunCommand("echo oops >&2").output, "oops\n");
}

}  // namespace
}  // namespace moebench
