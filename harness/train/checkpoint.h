// Checkpoints: model and optimizer state, the random generators and the training position,
// written atomically (temporary file, then rename) so a kill at any moment leaves the previous
// one intact, and stamped with the run and database they belong to.
#pragma once

#include <cstdint>
#include <string>

#include <torch/optim/adam.h>

#include "harness/model/transformer.h"

namespace moebench {

// Note [Checkpoint owner]
// A run folder is found by the run id alone (<db folder>/runs/<run id>), so two databases in
// one folder, or a `--run-dir` pointed at another run's folder, would find a checkpoint that is
// not theirs, and loading it would record another run's weights (or, at its final step, a
// hollow "finished" run) under this one. Each checkpoint therefore records its owner: the run
// id, the SHA-256 of the run's full resolved spec and the id of the database that recorded the
// run (Store::DatabaseId). A checkpoint is loaded only by its owner; any other is reported and
// never loaded. Checkpoints written before owners were recorded have none and count as foreign.
struct CheckpointOwner {
  std::string run_id, spec_sha256, db_id;
};

struct TrainPosition {
  int64_t step = 0;
  double train_seconds = 0;
};

// What a checkpoint file says about itself, read without loading its tensors.
struct CheckpointInfo {
  int64_t step = -1;  // -1: no checkpoint at the path
  bool has_owner = false;
  CheckpointOwner owner;
};

// keep_previous: the checkpoint being replaced is kept as `<path>.prev` (ranks of a process
// group: a crash between two ranks' saves leaves a step that every rank still has). Failures
// (a full disk, a folder that cannot be written) throw std::runtime_error naming the path,
// and leave any earlier checkpoint in place.
void SaveCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    const TrainPosition& pos, const CheckpointOwner& owner,
                    const at::Device& device, bool keep_previous = false);
// Throws std::runtime_error naming the path when the file exists but cannot be read.
CheckpointInfo ReadCheckpointInfo(const std::string& path);
// "" when `info` (an existing checkpoint) belongs to `expected`; otherwise why not, e.g.
// "it was written for run 0123... (a different run)".
std::string CheckpointOwnerMismatch(const CheckpointInfo& info, const CheckpointOwner& expected);
// Loads model, optimizer, generators and position. Tensors are loaded onto `device` (the
// model's), whatever device they were saved from. Throws std::runtime_error naming the path
// when the file cannot be loaded (corrupt, or a model of another shape).
void LoadCheckpoint(const std::string& path, Transformer& model, torch::optim::Adam& optimizer,
                    TrainPosition* pos, const at::Device& device);

}  // namespace moebench
