// Checkpoints: model and optimizer state plus the training position, written atomically
// (temporary file, then rename) so a kill at any moment leaves the previous one intact.
#pragma once

#include <cstdint>
#include <string>

#include <torch/optim/adam.h>

#include "harness/model/transformer.h"

namespace moebench {

struct TrainPosition {
  int64_t step = 0;
  double train_seconds = 0;
};

// keep_previous: the checkpoint being replaced is kept as `<path>.prev` (ranks of a process
// group: a crash between two ranks' saves leaves a step that every rank still has).
void SaveCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    const TrainPosition& pos, bool keep_previous = false);
// The step a checkpoint was written at; -1 when there is none at `path`.
int64_t CheckpointStep(const std::string& path);
// Returns false when no checkpoint exists at `path`.
// Tensors are loaded onto `device` (the model's), whatever device they were saved from.
bool LoadCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    TrainPosition* pos, const at::Device& device = at::kCPU);

}  // namespace moebench
