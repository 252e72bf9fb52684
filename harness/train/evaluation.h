// The evaluations of a run and what they record: validation before the first update (loss
// only), every eval_every steps and at the last step (loss and BLEU), and at the end the test
// split with its per-sentence outputs and, for eval_k, the test BLEU at each k experts. On
// ranks, every rank evaluates its share with all experts gathered (no collectives while
// decoding) and the writer records.
#pragma once

#include <cstdint>
#include <string>

#include "harness/train/evaluate.h"
#include "harness/train/run_record.h"
#include "harness/train/training.h"

namespace moebench {

class RunEvaluation {
 public:
  RunEvaluation(Training& t, RunRecord& record, std::string run_id);
  // Before any update: validation loss (no decoding).
  EvalResult Initial();
  // Validation with decoding, recorded at `step`; `wall`: training seconds so far.
  EvalResult Validate(int64_t step, double wall);
  // Test split and any-k curves (only when valid_sentences > 0).
  void Final(int64_t step, double wall);

 private:
  EvalResult Run(const std::vector<EncodedExample>& split, const std::vector<ParallelExample>& raw,
                 int64_t max_sentences, const RouteContext& ctx, const DecodeOptions& d);
  void Record(int64_t step, double wall, const std::string& split, const EvalResult& r, int k);
  void RecordOutputs(int64_t step, const std::string& split, const EvalResult& r, int k);

  Training& t_;
  RunRecord& record_;
  std::string run_id_;
  RouteContext base_ctx_;
  DecodeOptions dopt_;
};

}  // namespace moebench
