#include "datasets/synthetic.h"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

#include "datasets/prng.h"
#include "datasets/split.h"

namespace moebench {
namespace {

constexpr ReorderRule kReorderCycle[] = {ReorderRule::kKeep, ReorderRule::kReverse,
                                         ReorderRule::kSwapPairs, ReorderRule::kRotateLeft};
constexpr int kReorderCycleLength = 4;

constexpr const char* kSourceConsonants = "bdfgklmnprstvz";
constexpr const char* kSourceVowels = "aeiou";
constexpr const char* kTargetConsonants = "bcdfghjklmnpqrstvwxz";
constexpr const char* kTargetVowels = "aeiouy";
constexpr int kTargetConsonantsPerLang = 6;
constexpr int kTargetVowelsPerLang = 3;
constexpr int kMinSyllables = 2;
constexpr int kMaxSyllables = 4;
// Well below the number of distinct 2..4-syllable words of the smallest syllable set (18^2 +
// 18^3 + 18^4 > 100k), so rejection sampling of distinct words stays fast.
constexpr int kMaxWords = 20000;
// One source word in this many marks plural.
constexpr int kPluralEvery = 8;

// Separate streams so adding a language leaves the others' vocabularies unchanged.
constexpr uint64_t kSourceStream = 0x5eed0001;
constexpr uint64_t kSentenceStream = 0x5eed0002;

void CheckOptions(const SyntheticOptions& opt) {
  auto fail = [](const std::string& what) {
    throw std::runtime_error("synthetic dataset: " + what);
  };
  if (opt.langs.empty()) fail("langs must not be empty");
  std::unordered_set<std::string> seen;
  for (const std::string& lang : opt.langs) {
    if (lang.empty()) fail("a language name is empty");
    for (char c : lang) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-';
      if (!ok) fail("language name '" + lang + "' may hold only letters, digits, '_' and '-'");
    }
    if (!seen.insert(lang).second) fail("language '" + lang + "' is listed twice");
  }
  if (opt.n_train < 0 || opt.n_valid < 0 || opt.n_test < 0) {
    fail("n_train, n_valid and n_test must be >= 0");
  }
  if (opt.n_words < 2 || opt.n_words > kMaxWords) {
    fail("n_words must be in [2, " + std::to_string(kMaxWords) + "], got " +
         std::to_string(opt.n_words));
  }
  if (opt.min_len < 1 || opt.max_len < opt.min_len) {
    fail("need 1 <= min_len <= max_len, got min_len=" + std::to_string(opt.min_len) +
         " max_len=" + std::to_string(opt.max_len));
  }
}

// `count` distinct words of kMinSyllables..kMaxSyllables syllables from `syllables`.
std::vector<std::string> DrawDistinctWords(const std::vector<std::string>& syllables, int count,
                                           SplitMix64& rng) {
  std::vector<std::string> words;
  std::unordered_set<std::string> seen;
  while (static_cast<int>(words.size()) < count) {
    int n_syllables = static_cast<int>(rng.Between(kMinSyllables, kMaxSyllables));
    std::string word;
    for (int s = 0; s < n_syllables; ++s) {
      word += syllables[rng.Below(syllables.size())];
    }
    if (seen.insert(word).second) {
      words.push_back(word);
    }
  }
  return words;
}

std::vector<std::string> ConsonantVowelSyllables(const std::string& consonants,
                                                 const std::string& vowels) {
  std::vector<std::string> syllables;
  for (char c : consonants) {
    for (char v : vowels) {
      syllables.push_back(std::string{c, v});
    }
  }
  return syllables;
}

SyntheticLanguage MakeLanguage(const std::string& lang, size_t index, int n_words, uint64_t seed) {
  SyntheticLanguage language;
  language.lang = lang;
  language.reorder = kReorderCycle[index % kReorderCycleLength];
  language.agreement = (index + index / kReorderCycleLength) % 2 == 0;

  SplitMix64 rng(Mix64(seed) ^ StableHash64("lang:" + lang));
  std::string consonants = kTargetConsonants;
  std::string vowels = kTargetVowels;
  std::vector<char> consonant_pool(consonants.begin(), consonants.end());
  std::vector<char> vowel_pool(vowels.begin(), vowels.end());
  rng.Shuffle(consonant_pool);
  rng.Shuffle(vowel_pool);
  std::string own_consonants(consonant_pool.begin(),
                             consonant_pool.begin() + kTargetConsonantsPerLang);
  std::string own_vowels(vowel_pool.begin(), vowel_pool.begin() + kTargetVowelsPerLang);
  // A consonant outside the syllable set ends the suffix, so suffixed words are unambiguous.
  language.plural_suffix = std::string{own_vowels[0], consonant_pool[kTargetConsonantsPerLang]};
  language.words =
      DrawDistinctWords(ConsonantVowelSyllables(own_consonants, own_vowels), n_words, rng);
  return language;
}

// Index of the word whose cumulative weight first exceeds u * total.
int SampleZipf(const std::vector<double>& cumulative, SplitMix64& rng) {
  double target = rng.Unit() * cumulative.back();
  auto it = std::upper_bound(cumulative.begin(), cumulative.end(), target);
  if (it == cumulative.end()) --it;
  return static_cast<int>(it - cumulative.begin());
}

std::string JoinWords(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += ' ';
    out += words[i];
  }
  return out;
}

}  // namespace

const char* ReorderRuleName(ReorderRule rule) {
  switch (rule) {
    case ReorderRule::kKeep:
      return "keep";
    case ReorderRule::kReverse:
      return "reverse";
    case ReorderRule::kSwapPairs:
      return "swap_pairs";
    case ReorderRule::kRotateLeft:
      return "rotate_left";
  }
  return "?";
}

SyntheticGrammar MakeSyntheticGrammar(const SyntheticOptions& opt) {
  CheckOptions(opt);
  SyntheticGrammar grammar;
  SplitMix64 rng(Mix64(opt.seed) ^ kSourceStream);
  grammar.source_words = DrawDistinctWords(
      ConsonantVowelSyllables(kSourceConsonants, kSourceVowels), opt.n_words, rng);
  // Plural markers: a seeded subset, but always including one of the two most frequent words so
  // agreement shows up in most sentences.
  grammar.plural.assign(opt.n_words, false);
  std::vector<int> order(opt.n_words);
  for (int i = 0; i < opt.n_words; ++i) order[i] = i;
  rng.Shuffle(order);
  int n_plural = std::max(1, opt.n_words / kPluralEvery);
  for (int i = 0; i < n_plural; ++i) grammar.plural[order[i]] = true;
  grammar.plural[rng.Below(2)] = true;
  for (size_t i = 0; i < opt.langs.size(); ++i) {
    grammar.languages.push_back(MakeLanguage(opt.langs[i], i, opt.n_words, opt.seed));
  }
  return grammar;
}

std::vector<std::string> ApplyReorder(ReorderRule rule, std::vector<std::string> words) {
  switch (rule) {
    case ReorderRule::kKeep:
      break;
    case ReorderRule::kReverse:
      std::reverse(words.begin(), words.end());
      break;
    case ReorderRule::kSwapPairs:
      for (size_t i = 0; i + 1 < words.size(); i += 2) std::swap(words[i], words[i + 1]);
      break;
    case ReorderRule::kRotateLeft:
      if (!words.empty()) std::rotate(words.begin(), words.begin() + 1, words.end());
      break;
  }
  return words;
}

std::string RenderSyntheticSource(const SyntheticGrammar& grammar, const std::vector<int>& ids) {
  std::vector<std::string> words;
  for (int id : ids) words.push_back(grammar.source_words.at(id));
  return JoinWords(words);
}

std::string TranslateSynthetic(const SyntheticGrammar& grammar, size_t lang_index,
                               const std::vector<int>& ids) {
  const SyntheticLanguage& language = grammar.languages.at(lang_index);
  std::vector<std::string> words;
  for (size_t p = 0; p < ids.size(); ++p) {
    std::string word = language.words.at(ids[p]);
    if (language.agreement && p > 0 && grammar.plural.at(ids[p - 1])) {
      word += language.plural_suffix;
    }
    words.push_back(word);
  }
  return JoinWords(ApplyReorder(language.reorder, std::move(words)));
}

ParallelCorpus MakeSyntheticCorpus(const SyntheticOptions& opt) {
  SyntheticGrammar grammar = MakeSyntheticGrammar(opt);

  std::vector<double> cumulative(opt.n_words);
  double total_weight = 0;
  for (int i = 0; i < opt.n_words; ++i) {
    total_weight += 1.0 / (i + 1);
    cumulative[i] = total_weight;
  }

  ParallelCorpus corpus;
  corpus.name = "synthetic";
  corpus.langs = opt.langs;
  const int64_t wanted_total = int64_t(opt.n_train) + opt.n_valid + opt.n_test;
  const double valid_fraction = wanted_total > 0 ? double(opt.n_valid) / wanted_total : 0;
  const double test_fraction = wanted_total > 0 ? double(opt.n_test) / wanted_total : 0;
  int remaining[3] = {opt.n_train, opt.n_valid, opt.n_test};
  std::vector<ParallelExample>* split_examples[3] = {&corpus.train, &corpus.valid, &corpus.test};
  // Generous: at the defaults about 1.05 draws per accepted sentence are needed.
  const int64_t max_draws = 100 * wanted_total + 10000;

  SplitMix64 rng(Mix64(opt.seed) ^ kSentenceStream);
  std::unordered_set<std::string> seen;
  int64_t draws = 0;
  while (remaining[0] + remaining[1] + remaining[2] > 0) {
    if (draws++ >= max_draws) {
      throw std::runtime_error("synthetic dataset: could not draw " + std::to_string(wanted_total) +
                               " distinct source sentences in " + std::to_string(max_draws) +
                               " tries; raise n_words or max_len, or lower n_train/n_valid/n_test");
    }
    int length = static_cast<int>(rng.Between(opt.min_len, opt.max_len));
    std::vector<int> ids(length);
    for (int& id : ids) id = SampleZipf(cumulative, rng);
    std::string src = RenderSyntheticSource(grammar, ids);
    int split = static_cast<int>(SplitForSource(src, valid_fraction, test_fraction));
    if (remaining[split] == 0 || !seen.insert(src).second) continue;
    --remaining[split];
    for (size_t l = 0; l < grammar.languages.size(); ++l) {
      split_examples[split]->push_back({opt.langs[l], src, TranslateSynthetic(grammar, l, ids)});
    }
  }

  nlohmann::json rules = nlohmann::json::array();
  for (const SyntheticLanguage& language : grammar.languages) {
    rules.push_back({{"lang", language.lang},
                     {"reorder", ReorderRuleName(language.reorder)},
                     {"agreement", language.agreement}});
  }
  corpus.provenance = {{"generator", "synthetic-v1"}, {"seed", opt.seed},
                       {"langs", opt.langs},          {"n_train", opt.n_train},
                       {"n_valid", opt.n_valid},      {"n_test", opt.n_test},
                       {"n_words", opt.n_words},      {"min_len", opt.min_len},
                       {"max_len", opt.max_len},      {"rules", rules}};
  corpus.content_hash = ComputeCorpusHash(corpus);
  return corpus;
}

}  // namespace moebench
