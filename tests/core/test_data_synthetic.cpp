#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>

#include "datasets/synthetic.h"

namespace moebench {
namespace {

std::vector<std::string> Words(const std::string& sentence) {
  std::vector<std::string> words;
  std::istringstream in(sentence);
  std::string word;
  while (in >> word) words.push_back(word);
  return words;
}

SyntheticOptions SmallOptions(uint64_t seed) {
  SyntheticOptions opt;
  opt.seed = seed;
  opt.n_train = 400;
  opt.n_valid = 40;
  opt.n_test = 40;
  return opt;
}

TEST(SyntheticReorder, AppliesEachRuleToAHandBuiltSentence) {
  std::vector<std::string> s = {"a", "b", "c", "d", "e"};
  EXPECT_EQ(ApplyReorder(ReorderRule::kKeep, s), s);
  EXPECT_EQ(ApplyReorder(ReorderRule::kReverse, s),
            (std::vector<std::string>{"e", "d", "c", "b", "a"}));
  EXPECT_EQ(ApplyReorder(ReorderRule::kSwapPairs, s),
            (std::vector<std::string>{"b", "a", "d", "c", "e"}));
  EXPECT_EQ(ApplyReorder(ReorderRule::kSwapPairs, {"a", "b", "c", "d"}),
            (std::vector<std::string>{"b", "a", "d", "c"}));
  EXPECT_EQ(ApplyReorder(ReorderRule::kRotateLeft, s),
            (std::vector<std::string>{"b", "c", "d", "e", "a"}));
  EXPECT_TRUE(ApplyReorder(ReorderRule::kRotateLeft, {}).empty());
  EXPECT_EQ(ApplyReorder(ReorderRule::kSwapPairs, {"a"}), (std::vector<std::string>{"a"}));
}

TEST(SyntheticTranslate, AppliesMappingAgreementThenReorderOnAHandBuiltGrammar) {
  SyntheticGrammar grammar;
  grammar.source_words = {"s0", "s1", "s2", "s3"};
  grammar.plural = {false, true, false, false};
  SyntheticLanguage reversed;
  reversed.lang = "xr";
  reversed.reorder = ReorderRule::kReverse;
  reversed.agreement = true;
  reversed.plural_suffix = "-p";
  reversed.words = {"A", "B", "C", "D"};
  SyntheticLanguage plain = reversed;
  plain.lang = "xk";
  plain.reorder = ReorderRule::kKeep;
  plain.agreement = false;
  grammar.languages = {reversed, plain};

  std::vector<int> ids = {0, 1, 2, 1, 3};
  EXPECT_EQ(RenderSyntheticSource(grammar, ids), "s0 s1 s2 s1 s3");
  // Mapping: A B C B D; agreement after each s1: A B C-p B D-p; reversed.
  EXPECT_EQ(TranslateSynthetic(grammar, 0, ids), "D-p B C-p B A");
  EXPECT_EQ(TranslateSynthetic(grammar, 1, ids), "A B C B D");
  // A plural word at the end of a sentence marks nothing.
  EXPECT_EQ(TranslateSynthetic(grammar, 0, {1}), "B");
}

TEST(SyntheticGrammar, AssignsRulesByLanguageIndex) {
  SyntheticOptions opt;
  opt.langs = {"xa", "xb", "xc", "xd", "xe", "xf", "xg", "xh"};
  SyntheticGrammar grammar = MakeSyntheticGrammar(opt);
  ASSERT_EQ(grammar.languages.size(), 8u);
  EXPECT_EQ(grammar.languages[0].reorder, ReorderRule::kKeep);
  EXPECT_TRUE(grammar.languages[0].agreement);
  EXPECT_EQ(grammar.languages[1].reorder, ReorderRule::kReverse);
  EXPECT_FALSE(grammar.languages[1].agreement);
  EXPECT_EQ(grammar.languages[2].reorder, ReorderRule::kSwapPairs);
  EXPECT_TRUE(grammar.languages[2].agreement);
  EXPECT_EQ(grammar.languages[3].reorder, ReorderRule::kRotateLeft);
  EXPECT_FALSE(grammar.languages[3].agreement);
  std::set<std::pair<int, bool>> combos;
  for (const SyntheticLanguage& language : grammar.languages) {
    combos.insert({static_cast<int>(language.reorder), language.agreement});
  }
  EXPECT_EQ(combos.size(), 8u);  // every rule with and without agreement
}

TEST(SyntheticGrammar, EachMappingIsABijectionAndSuffixesAreUnambiguous) {
  SyntheticOptions opt;
  opt.langs = {"xa", "xb", "xc", "xd"};
  SyntheticGrammar grammar = MakeSyntheticGrammar(opt);
  ASSERT_EQ(grammar.source_words.size(), 120u);
  EXPECT_EQ(std::set<std::string>(grammar.source_words.begin(), grammar.source_words.end()).size(),
            120u);
  int n_plural = 0;
  for (bool p : grammar.plural) n_plural += p;
  EXPECT_GE(n_plural, 1);
  EXPECT_TRUE(grammar.plural[0] || grammar.plural[1]);
  for (const SyntheticLanguage& language : grammar.languages) {
    ASSERT_EQ(language.words.size(), 120u) << language.lang;
    std::set<std::string> forms(language.words.begin(), language.words.end());
    EXPECT_EQ(forms.size(), 120u) << language.lang << ": two source words share a translation";
    // Injective on inflected forms too: no suffixed word equals any bare or suffixed word.
    for (const std::string& word : language.words) {
      forms.insert(word + language.plural_suffix);
    }
    EXPECT_EQ(forms.size(), 240u) << language.lang;
    for (const std::string& word : language.words) {
      for (char c : word) ASSERT_TRUE(c >= 'a' && c <= 'z') << word;
    }
  }
  // Languages are spelled differently: no translation is shared by all of them at one index.
  for (size_t l = 1; l < grammar.languages.size(); ++l) {
    EXPECT_NE(grammar.languages[0].words, grammar.languages[l].words);
  }
}

TEST(SyntheticGrammar, ALanguageKeepsItsVocabularyWhenOthersAreAdded) {
  SyntheticOptions one;
  one.langs = {"xa"};
  SyntheticOptions three;  // xa, xb, xc
  EXPECT_EQ(MakeSyntheticGrammar(one).languages[0].words,
            MakeSyntheticGrammar(three).languages[0].words);
}

TEST(SyntheticCorpus, SameSeedSameCorpusDifferentSeedDifferent) {
  ParallelCorpus a = MakeSyntheticCorpus(SmallOptions(5));
  ParallelCorpus b = MakeSyntheticCorpus(SmallOptions(5));
  ParallelCorpus c = MakeSyntheticCorpus(SmallOptions(6));
  EXPECT_EQ(a.content_hash, b.content_hash);
  EXPECT_EQ(a.content_hash, ComputeCorpusHash(a));
  EXPECT_NE(a.content_hash, c.content_hash);
  EXPECT_EQ(a.name, "synthetic");
  EXPECT_EQ(a.provenance.at("seed"), 5);
  EXPECT_EQ(a.provenance.at("rules").size(), 3u);
}

TEST(SyntheticCorpus, HasRequestedSizesDisjointSplitsAndNoDuplicates) {
  SyntheticOptions opt = SmallOptions(1);
  ParallelCorpus corpus = MakeSyntheticCorpus(opt);
  EXPECT_EQ(corpus.langs, opt.langs);
  EXPECT_EQ(corpus.train.size(), 400u * 3);
  EXPECT_EQ(corpus.valid.size(), 40u * 3);
  EXPECT_EQ(corpus.test.size(), 40u * 3);
  std::map<std::string, int> split_of_source;
  const std::vector<ParallelExample>* splits[3] = {&corpus.train, &corpus.valid, &corpus.test};
  for (int s = 0; s < 3; ++s) {
    std::set<std::pair<std::string, std::string>> pairs;
    for (const ParallelExample& example : *splits[s]) {
      auto inserted = split_of_source.insert({example.src, s});
      ASSERT_EQ(inserted.first->second, s) << "'" << example.src << "' is in two splits";
      ASSERT_TRUE(pairs.insert({example.lang, example.src}).second) << "duplicate " << example.src;
      size_t n = Words(example.src).size();
      ASSERT_GE(n, 3u);
      ASSERT_LE(n, 12u);
    }
  }
  EXPECT_EQ(split_of_source.size(), 480u);
}

// Checks every example against the rules written out independently of TranslateSynthetic.
TEST(SyntheticCorpus, TargetsFollowEachLanguagesRules) {
  SyntheticOptions opt = SmallOptions(2);
  ParallelCorpus corpus = MakeSyntheticCorpus(opt);
  SyntheticGrammar grammar = MakeSyntheticGrammar(opt);
  std::unordered_map<std::string, int> source_id;
  for (size_t i = 0; i < grammar.source_words.size(); ++i) {
    source_id[grammar.source_words[i]] = static_cast<int>(i);
  }
  int suffixed = 0;
  for (const ParallelExample& example : corpus.train) {
    std::vector<std::string> src = Words(example.src);
    std::vector<std::string> tgt = Words(example.tgt);
    ASSERT_EQ(src.size(), tgt.size());
    size_t l = example.lang == "xa" ? 0 : example.lang == "xb" ? 1 : 2;
    const SyntheticLanguage& language = grammar.languages[l];
    const size_t n = src.size();
    for (size_t p = 0; p < n; ++p) {
      int id = source_id.at(src[p]);
      if (example.lang == "xa") {  // keep order; suffix after a plural word
        std::string expected = language.words[id];
        if (p > 0 && grammar.plural[source_id.at(src[p - 1])]) {
          expected += language.plural_suffix;
          ++suffixed;
        }
        ASSERT_EQ(tgt[p], expected) << example.src << " -> " << example.tgt;
      } else if (example.lang == "xb") {  // reversed, no agreement
        ASSERT_EQ(tgt[n - 1 - p], language.words[id]) << example.src << " -> " << example.tgt;
      } else {  // xc: adjacent pairs swapped, agreement
        size_t q = (p % 2 == 0) ? (p + 1 < n ? p + 1 : p) : p - 1;
        std::string expected = language.words[id];
        if (p > 0 && grammar.plural[source_id.at(src[p - 1])]) expected += language.plural_suffix;
        ASSERT_EQ(tgt[q], expected) << example.src << " -> " << example.tgt;
      }
    }
  }
  EXPECT_GT(suffixed, 100);  // agreement is exercised often, not vacuously
}

TEST(SyntheticCorpus, SourceWordsFollowZipf) {
  SyntheticOptions opt = SmallOptions(3);
  ParallelCorpus corpus = MakeSyntheticCorpus(opt);
  SyntheticGrammar grammar = MakeSyntheticGrammar(opt);
  std::map<std::string, int> count;
  for (const ParallelExample& example : corpus.train) {
    if (example.lang != "xa") continue;
    for (const std::string& w : Words(example.src)) ++count[w];
  }
  // Expected ratio of rank 0 to rank 9 is 10; allow sampling noise.
  double ratio = double(count[grammar.source_words[0]]) / count[grammar.source_words[9]];
  EXPECT_GT(ratio, 6.0);
  EXPECT_LT(ratio, 15.0);
  EXPECT_GT(count[grammar.source_words[0]], count[grammar.source_words[100]]);
}

TEST(SyntheticCorpus, DefaultsAreFast) {
  auto start = std::chrono::steady_clock::now();
  ParallelCorpus corpus = MakeSyntheticCorpus(SyntheticOptions());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(corpus.train.size(), 18000u);
  // The budget is 0.2 s; the bound is loose so a loaded machine does not fail it.
  EXPECT_LT(seconds, 2.0);
}

TEST(SyntheticCorpus, RejectsBadOptions) {
  SyntheticOptions opt;
  opt.langs = {};
  EXPECT_THROW(MakeSyntheticCorpus(opt), std::runtime_error);
  opt = SyntheticOptions();
  opt.langs = {"xa", "xa"};
  EXPECT_THROW(MakeSyntheticCorpus(opt), std::runtime_error);
  opt = SyntheticOptions();
  opt.langs = {"x,a"};
  EXPECT_THROW(MakeSyntheticCorpus(opt), std::runtime_error);
  opt = SyntheticOptions();
  opt.min_len = 5;
  opt.max_len = 4;
  EXPECT_THROW(MakeSyntheticCorpus(opt), std::runtime_error);
  opt = SyntheticOptions();
  opt.n_words = 1;
  EXPECT_THROW(MakeSyntheticCorpus(opt), std::runtime_error);
  opt = SyntheticOptions();
  opt.n_valid = -1;
  EXPECT_THROW(MakeSyntheticCorpus(opt), std::runtime_error);
}

TEST(SyntheticCorpus, ReportsWhenTooFewDistinctSentencesExist) {
  SyntheticOptions opt;
  opt.n_words = 2;
  opt.min_len = 1;
  opt.max_len = 1;  // only two distinct sentences
  opt.n_train = 10;
  opt.n_valid = 0;
  opt.n_test = 0;
  try {
    MakeSyntheticCorpus(opt);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("distinct source sentences"), std::string::npos);
  }
}

}  // namespace
}  // namespace moebench
