// The paired bootstrap of two runs' BLEU from their stored per-sentence outputs: what
// `moebench compare A B` prints and `moebench diff A B --bleu` runs.
//
// It tests what the trainer reports (harness/bleu/per_language.h): with `lang` X, X's BLEU
// scored with X's tokenizer (TokenizerForLanguage: zh, ja-mecab, else 13a); with "all", the
// headline, the mean over languages of each language's BLEU, every resample re-scoring each
// language with its own tokenizer and keeping each language's sentence count
// (PairedBootstrapBleuByLanguage, Note [Stratified bootstrap] in harness/bleu/significance.h).
// Both runs must have decoded the same sentences (idx, reference) in the same languages.
// Outputs of old databases carry no language (lang ''): only then is the bootstrap the corpus
// BLEU of all sentences pooled, with 13a, and the note says so.
//
// Per-sentence outputs are written by the trainer (schema 2) into
//   outputs(run_id TEXT, step INTEGER, split TEXT, lang TEXT, k INTEGER, idx INTEGER,
//           hyp TEXT, ref TEXT, UNIQUE (run_id, step, split, k, idx))
// one row per decoded sentence (idx = position in the split, lang = its target language).
// They are read from the last step that has any for (split, k = 0).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/store/store.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace moebench {

struct SignificanceOptions {
  std::string split = "test";  // test | valid
  std::string lang = "all";    // a language code, or all: the headline
  int samples = 1000;
  uint64_t seed = 12345;
};

struct Significance {
  std::optional<double> p_value;  // sacreBLEU's two-sided rule; empty: not measured (note)
  std::optional<double> bleu_a, bleu_b;
  int64_t sentences = 0;
  std::string note;
  std::vector<std::string> languages;             // tested; empty for the pooled fallback
  std::map<std::string, std::string> tokenizers;  // language -> its BLEU tokenizer
};

// B against A (A the baseline). Reads only; never throws for missing outputs (the note says
// what is missing).
Significance PairedSignificance(const Store& store, const RunRow& a, const RunRow& b,
                                const SignificanceOptions& opt);

// "significance (test BLEU, all): p = 0.01; paired bootstrap (...)" or, not measured, the note.
std::string SignificanceLine(const Significance& sig, const SignificanceOptions& opt);

// --split, --lang, --samples, --seed (help prefixed with `help_prefix`); returns the options.
std::vector<CLI::Option*> AddSignificanceOptions(CLI::App& cmd, SignificanceOptions* opt,
                                                 const std::string& help_prefix = "");

}  // namespace moebench
