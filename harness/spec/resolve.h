// Turning what a user gave (flags, a run-spec JSON, a manifest) into the resolved spec that
// hashes to the run id: defaults that depend on other fields, and the method's knobs. One rule
// for every entry point, so the same run is the same id whichever way it was asked for.
#pragma once

#include <optional>
#include <string>

#include "harness/spec/run_spec.h"

namespace moebench {

// What the user stated about the layout (a flag or a manifest key), as opposed to defaults.
struct LayoutGiven {
  bool workers = false;
  bool workers_per_node = false;
  // How errors name the two fields: keys for manifests and JSON, flags for `train`.
  std::string workers_name = "workers", world_size_name = "world_size";
};

// Note [Rank layout]: with ranks (world_size > 1) each rank is one worker, so workers =
// world_size (a different `workers` stated is an error naming both). Ranks without a stated
// workers_per_node sit on one node, or, under a launcher that says how many ranks share this
// node (`local_world_size`: LOCAL_WORLD_SIZE and the like), that many per node. One process
// playing W virtual workers (`--workers W`, a manifest's `workers = W`) without a stated
// workers_per_node puts them on one node too, so `--workers N` and `--world-size N` count the
// same bytes as the same classes.
void ResolveLayout(RunSpec& spec, const LayoutGiven& given,
                   std::optional<int> local_world_size = std::nullopt);

// Note [GPU batch defaults]
// The CPU default of tokens_per_batch, 2048 padded tokens, leaves a GPU waiting on the host
// (docs/gpu.md: a tiny step is 31 ms of launches for 2048 tokens). A run on `device = cuda`
// that states neither tokens_per_batch nor grad_accum gets its size's GPU budget instead:
//   tokens_per_batch = tokens_per_device x world_size (each rank's share is one GPU's budget;
//                      virtual workers on one process share its one GPU)
//   grad_accum       = ceil(tokens_per_device / micro_batch_tokens)
// where micro_batch_tokens is the most tokens of one forward + backward that fit an 80 GB GPU
// with room to spare: the bytes a training step holds between steps plus the peak of the
// tensors it allocates, measured per token on the CPU in fp32 (Note [Tensor memory]; the
// figures in docs/gpu.md, `moebench_bench --train-tokens`), kept under 40 GB so that padding
// skew, longer vocabularies and the GPU libraries' workspaces fit too. A stated
// tokens_per_batch keeps its value and, when grad_accum is not stated, gets the micro-batches
// it needs: ceil(tokens_per_batch / world_size / micro_batch_tokens); a stated grad_accum is
// kept as stated. With cuda_graph on, micro_batch_tokens is halved: a graph run holds a step's
// tensors twice, in the graphs' memory pool (the captured steps) and in the allocator's general
// pool (the eager warm-up and window-close steps). CPU runs keep the spec's defaults. The resolved
// values enter the run spec, and so the run id: the same command on a GPU gives the same run
// whichever GPU runs it.
struct GpuBatch {
  int64_t tokens_per_device = 0;   // a step's padded tokens on one GPU
  int64_t micro_batch_tokens = 0;  // the most tokens one forward + backward holds
};
// Throws for an unknown size, naming the known ones.
GpuBatch GpuBatchDefaults(const std::string& size);

// What the user stated (a flag, a manifest key, a run-spec file), as opposed to defaults.
struct BatchGiven {
  bool tokens_per_batch = false;
  bool grad_accum = false;
};
// Note [GPU batch defaults]; call after ResolveLayout (it needs world_size). Idempotent for
// what it sets.
void ResolveBatch(RunSpec& spec, const BatchGiven& given);

// What a run that ran out of device memory should change, after the allocator's message: its
// batch per forward pass and the grad_accum that halves it.
std::string OutOfMemoryAdvice(const RunSpec& spec);

// Resolves the method's knobs into the spec (defaults included), so the run id covers them,
// and sets workers = world_size for runs on ranks. Idempotent.
void ResolveKnobs(RunSpec& spec);

}  // namespace moebench
