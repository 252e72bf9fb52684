// One training run: data, model, method, Adam with inverse-sqrt warm-up, label-smoothed CE,
// gradient clipping, per-step metrics, periodic validation (loss and greedy BLEU, timed apart
// from training), checkpoint and resume. Everything it measures goes into the results store.
#pragma once

#include <string>

#include "harness/spec/run_spec.h"

namespace moebench {

struct TrainResult {
  std::string run_id;
  int64_t steps = 0;
  double first_valid_loss = 0;  // before any update
  double final_valid_loss = 0;
  double final_valid_bleu = 0;
  double train_seconds = 0;  // wall-clock of training steps, evaluation excluded
  double tokens_per_second = 0;
  bool resumed = false;
};

// Runs (or resumes) the run and records it; on an error the run is recorded as failed with
// the reason and the exception is rethrown.
TrainResult TrainRun(RunSpec spec, const RunEnv& env);

}  // namespace moebench
