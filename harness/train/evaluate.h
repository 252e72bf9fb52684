// Validation and test evaluation: token-level loss, greedy decoding and BLEU per language.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "harness/comm/comm.h"
#include "harness/model/transformer.h"
#include "harness/train/data_pipeline.h"
#include "harness/train/decode.h"

namespace moebench {

struct LangScore {
  double bleu = 0;
  double chrf = 0;
  std::string signature;  // BLEU's
  int64_t n_sentences = 0;
};

struct EvalResult {
  double loss = 0;  // label-smoothed CE per target token
  double nll = 0;   // NLL per target token
  int64_t tokens = 0;
  // Per target language, each scored with its own tokenizer (TokenizerForLanguage), and under
  // "" the headline: the mean of the per-language BLEU and chrF scores, whose signature starts
  // "mean of per-language BLEU: " (harness/bleu/per_language.h).
  std::map<std::string, LangScore> per_lang;
  // Per language over the whole split: (label-smoothed CE, NLL) per target token, and tokens.
  struct LangLoss {
    double loss = 0, nll = 0;
    int64_t tokens = 0;
  };
  std::map<std::string, LangLoss> lang_loss;
  nlohmann::json decoding;  // decoding settings, stored with the scores
  // The decoded sentences (the first max_sentences of the split), for per-sentence storage.
  std::vector<std::string> hyps, refs, langs;
};

// Loss over the whole split; BLEU over at most `max_sentences` sentences (0: no decoding).
// With `ranks` (a process group whose MoE layers hold gathered experts: GatheredExperts), rank
// r evaluates batches r, r + W, ... of the same fixed batching and the results are combined,
// so every rank returns what one process would have computed alone.
EvalResult Evaluate(Transformer& model, const TranslationData& data,
                    const std::vector<EncodedExample>& split,
                    const std::vector<ParallelExample>& raw, int64_t max_sentences,
                    double label_smoothing, const RouteContext& ctx,
                    DecodeOptions dopt = DecodeOptions(), Comm* ranks = nullptr);

}  // namespace moebench
