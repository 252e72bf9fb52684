// BLEU and chrF of a multilingual test set, one target language at a time, and the headline.
//
// Each language is scored with the tokenizer sacreBLEU prescribes for it (TokenizerForLanguage:
// zh for Chinese, ja-mecab for Japanese, 13a otherwise) and keeps its own signature. The
// headline, under the key "", is the arithmetic mean of the per-language BLEU scores (and,
// beside it, of the per-language chrF scores), as multilingual MT papers report: a BLEU pooled
// over all sentences would mix tokenizers, and would weigh languages by their sentence counts.
// Its signature names the definition and every language's signature:
//   "mean of per-language BLEU: de:nrefs:1|...|tok:13a|...;
//   ja:nrefs:1|...|tok:ja-mecab-0.996-IPA|..."
// (languages in sorted order, "; " between them). With one language the headline is that
// language's score.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/bleu/bleu.h"
#include "harness/bleu/chrf.h"

namespace moebench {

struct LanguageScore {
  double bleu = 0;
  double chrf = 0;
  std::string bleu_signature;
  std::string chrf_signature;
  int64_t n_sentences = 0;
};

// The prefix of the headline's BLEU signature ("mean of per-language BLEU: ").
inline constexpr const char* kMeanBleuSignaturePrefix = "mean of per-language BLEU: ";

// hyps[i], refs[i] and langs[i] describe sentence i (one reference each). `bleu` gives every
// BLEU option except the tokenizer, which is chosen per language; `chrf` is used as is. Returns
// one entry per language and the headline under "" (no entries for no sentences). Throws
// std::runtime_error on mismatched lengths or an empty language code ("" is the headline's key).
std::map<std::string, LanguageScore> ScoreByLanguage(const std::vector<std::string>& hyps,
                                                     const std::vector<std::string>& refs,
                                                     const std::vector<std::string>& langs,
                                                     const BleuOptions& bleu = {},
                                                     const ChrfOptions& chrf = {});

}  // namespace moebench
