// The synthetic task: a seeded multilingual toy translation task for fast tests and smoke runs.
// Each target "language" is a different deterministic function of the source sentence, so a
// small Transformer can learn every direction in a few hundred steps:
//   1. vocabulary: a per-language bijection source word -> target word; target words are
//      spelled from per-language syllable sets (consonant-vowel pairs), so languages differ;
//   2. agreement (some languages): the translation of a word that follows a "plural" source
//      word takes the language's plural suffix (a vowel + a consonant the language otherwise
//      never uses, so a suffixed word can never equal another target word);
//   3. reordering: keep, reverse, swap adjacent pairs, or rotate left by one.
// Agreement is decided in source order, then the target words are reordered.
// Language i gets rule kReorderCycle[i % 4] and agreement iff (i + i / 4) is even, so the
// defaults are xa = keep + agreement, xb = reverse, xc = swap pairs + agreement, and the first
// eight languages cover all eight combinations.
// Source words are made-up lowercase words drawn from a Zipf distribution (word i has weight
// 1 / (i + 1)); sentence lengths are uniform in [min_len, max_len].
// Everything is drawn from SplitMix64, so a seed yields the same corpus on every platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "datasets/corpus.h"

namespace moebench {

struct SyntheticOptions {
  uint64_t seed = 1;
  std::vector<std::string> langs = {"xa", "xb", "xc"};
  int n_train = 6000;  // distinct source sentences per split; each is paired with every lang,
  int n_valid = 300;   // so a split holds n * langs.size() examples
  int n_test = 300;
  int n_words = 120;  // source vocabulary size
  int min_len = 3;    // sentence length in words, inclusive range
  int max_len = 12;
};

enum class ReorderRule { kKeep, kReverse, kSwapPairs, kRotateLeft };

const char* ReorderRuleName(ReorderRule rule);

struct SyntheticLanguage {
  std::string lang;
  ReorderRule reorder = ReorderRule::kKeep;
  bool agreement = false;
  std::string plural_suffix;       // appended to a word that follows a plural source word
  std::vector<std::string> words;  // words[i] translates source word i
};

struct SyntheticGrammar {
  std::vector<std::string> source_words;  // index = Zipf rank (0 = most frequent)
  std::vector<bool> plural;               // plural[i]: source word i marks plural
  std::vector<SyntheticLanguage> languages;
};

// The vocabulary, markers and per-language rules for `opt` (no sentences).
SyntheticGrammar MakeSyntheticGrammar(const SyntheticOptions& opt);

// Reorders a sentence's words by `rule`: kSwapPairs swaps words (0,1), (2,3), ... leaving an odd
// last word in place; kRotateLeft moves the first word to the end.
std::vector<std::string> ApplyReorder(ReorderRule rule, std::vector<std::string> words);

// The source sentence (words joined by single spaces) for word ids into grammar.source_words.
std::string RenderSyntheticSource(const SyntheticGrammar& grammar, const std::vector<int>& ids);

// The translation of the sentence `ids` into grammar.languages[lang_index].
std::string TranslateSynthetic(const SyntheticGrammar& grammar, size_t lang_index,
                               const std::vector<int>& ids);

// Throws std::runtime_error naming the bad option, or when the options
// cannot yield enough distinct source sentences.
ParallelCorpus MakeSyntheticCorpus(const SyntheticOptions& opt);

}  // namespace moebench
