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
#include <utility>
#include <vector>

#include "harness/bleu/bleu.h"
#include "harness/bleu/chrf.h"
#include "harness/bleu/segment_stats.h"
#include "harness/bleu/significance.h"

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

// ---- building blocks: several references, the CLI and the bootstrap -------------------------

// The segments of each language: `languages` sorted, segments[l] the indices of language l in
// increasing order. Throws std::runtime_error on an empty language code (naming its segment).
struct LanguageGroups {
  std::vector<std::string> languages;
  std::vector<std::vector<size_t>> segments;
};
LanguageGroups GroupByLanguage(const std::vector<std::string>& langs);

// `bleu` with the tokenizer of `lang` (TokenizerForLanguage), or `tokenizer_override` when it is
// not empty.
BleuOptions BleuOptionsForLanguage(const BleuOptions& bleu, const std::string& lang,
                                   const std::string& tokenizer_override = "");

// Corpus scores of each language of `groups` (in its order); refs as in CorpusBleu, with
// refs[r].size() == hyps.size().
std::vector<BleuScore> CorpusBleuByLanguage(const std::vector<std::string>& hyps,
                                            const std::vector<std::vector<std::string>>& refs,
                                            const LanguageGroups& groups, const BleuOptions& bleu,
                                            const std::string& tokenizer_override = "");
std::vector<ChrfScore> CorpusChrfByLanguage(const std::vector<std::string>& hyps,
                                            const std::vector<std::vector<std::string>>& refs,
                                            const LanguageGroups& groups, const ChrfOptions& chrf);

// "mean of per-language <metric>: <lang>:<signature>; ..." for languages[i], signatures[i].
std::string MeanSignature(const std::string& metric, const std::vector<std::string>& languages,
                          const std::vector<std::string>& signatures);

// Note [Statistics by language]
// For the paired bootstrap, the headline must be recomputed on every resample of the segments:
// the mean over languages of each language's corpus score. Row i of these statistics has one
// block per language of `groups` (in its order), of width 1 + the metric's width; the block of
// segment i's language holds 1 (a segment count) and the segment's statistics under that
// language's options, every other block zeros. Summing rows therefore sums each language
// separately, and the scorer averages the scores of the languages whose count is > 0 (only an
// unstratified resample can miss a language; the bootstraps below resample within each
// language, Note [Stratified bootstrap] in significance.h). On the full corpus that is the
// headline.
SegmentStats BleuSegmentStatsByLanguage(const std::vector<std::string>& hyps,
                                        const std::vector<std::vector<std::string>>& refs,
                                        const LanguageGroups& groups, const BleuOptions& bleu,
                                        const std::string& tokenizer_override = "");
SegmentStats ChrfSegmentStatsByLanguage(const std::vector<std::string>& hyps,
                                        const std::vector<std::vector<std::string>>& refs,
                                        const LanguageGroups& groups, const ChrfOptions& chrf);
ScoreFromStats MeanBleuOverLanguages(size_t num_languages, const BleuOptions& bleu);
ScoreFromStats MeanChrfOverLanguages(size_t num_languages, const ChrfOptions& chrf);

// `opt` with the strata of `groups`: every resample keeps each language's sentence count (Note
// [Stratified bootstrap] in significance.h).
PairedBootstrapOptions StratifiedByLanguage(const PairedBootstrapOptions& opt,
                                            const LanguageGroups& groups);

// Paired bootstrap of the mean over languages (systems and refs as in PairedBootstrapBleu,
// langs[i] the language of segment i), resampled within each language (StratifiedByLanguage).
// With one language: that language's BLEU with its own tokenizer.
PairedBootstrapResult PairedBootstrapBleuByLanguage(
    const std::vector<std::vector<std::string>>& systems,
    const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& langs,
    const BleuOptions& bleu = {}, const PairedBootstrapOptions& opt = {},
    const std::string& tokenizer_override = "");
PairedBootstrapResult PairedBootstrapChrfByLanguage(
    const std::vector<std::vector<std::string>>& systems,
    const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& langs,
    const ChrfOptions& chrf = {}, const PairedBootstrapOptions& opt = {});

}  // namespace moebench
