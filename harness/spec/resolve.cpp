#include "harness/spec/resolve.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "methods/method.h"

namespace moebench {

void ResolveLayout(RunSpec& spec, const LayoutGiven& given, std::optional<int> local_world_size) {
  if (spec.world_size <= 1) {
    // One process playing the workers: on one node unless stated, as ranks are.
    if (!given.workers_per_node) spec.workers_per_node = spec.workers;
    return;
  }
  const int n = spec.world_size;
  if (given.workers && spec.workers != n) {
    throw std::invalid_argument(given.workers_name + " " + std::to_string(spec.workers) +
                                " differs from " + given.world_size_name + " " + std::to_string(n) +
                                " (with ranks, each rank is one worker)");
  }
  spec.workers = n;
  if (!given.workers_per_node) spec.workers_per_node = local_world_size.value_or(n);
}

GpuBatch GpuBatchDefaults(const std::string& size) {
  // size, tokens per device, micro-batch tokens (Note [GPU batch defaults]; figures: docs/gpu.md).
  struct Row {
    const char* size;
    GpuBatch batch;
  };
  static const Row kRows[] = {
      {"tiny", {32768, 131072}},
      {"small", {65536, 131072}},
      {"base", {65536, 65536}},
      {"large", {65536, 16384}},
  };
  std::string known;
  for (const Row& row : kRows) {
    if (size == row.size) return row.batch;
    known += (known.empty() ? "" : ", ") + std::string(row.size);
  }
  throw std::invalid_argument("unknown size '" + size + "' (known: " + known + ")");
}

void ResolveBatch(RunSpec& spec, const BatchGiven& given) {
  if (spec.device != "cuda" || (given.tokens_per_batch && given.grad_accum)) return;
  const GpuBatch gpu = GpuBatchDefaults(spec.size);
  const int64_t ranks = std::max(1, spec.world_size);
  if (!given.tokens_per_batch) spec.tokens_per_batch = gpu.tokens_per_device * ranks;
  if (!given.grad_accum) {
    const int64_t per_device = (spec.tokens_per_batch + ranks - 1) / ranks;
    // Graph runs hold a step's tensors twice: in the graphs' memory pool and in the allocator's
    // general pool, for the eager steps (warm-up, window closes).
    const int64_t micro =
        spec.cuda_graph == "on" ? gpu.micro_batch_tokens / 2 : gpu.micro_batch_tokens;
    spec.grad_accum = std::max<int64_t>(1, (per_device + micro - 1) / micro);
  }
}

std::string OutOfMemoryAdvice(const RunSpec& spec) {
  const int64_t ranks = std::max(1, spec.world_size);
  const int64_t accum = std::max<int64_t>(1, spec.grad_accum);
  const int64_t per_forward = (spec.tokens_per_batch + ranks * accum - 1) / (ranks * accum);
  return "the step's batch is tokens_per_batch " + std::to_string(spec.tokens_per_batch) +
         " in grad_accum " + std::to_string(accum) + " micro-batch(es), about " +
         std::to_string(per_forward) + " padded tokens per forward on each device" +
         (ranks > 1 ? " (" + std::to_string(ranks) + " ranks)" : std::string()) +
         ": run it as --grad-accum " + std::to_string(2 * accum) +
         " (same batch, half the memory for activations) or lower --tokens-per-batch" +
         " (Note [GPU batch defaults], docs/gpu.md)";
}

void ResolveKnobs(RunSpec& spec) {
  // With ranks, each rank is one worker: workers follows world_size unless set to it.
  if (spec.world_size < 1) throw std::invalid_argument("world_size must be >= 1");
  if (spec.world_size > 1 && spec.workers != spec.world_size) {
    if (spec.workers != 1) {
      throw std::invalid_argument("world_size " + std::to_string(spec.world_size) +
                                  " with workers " + std::to_string(spec.workers) +
                                  ": with ranks, each rank is one worker (leave workers unset)");
    }
    spec.workers = spec.world_size;
  }
  const MethodInfo& info = FindMethod(spec.method);
  spec.knobs = Knobs(spec.method, info.knobs, spec.knobs).values();
}

}  // namespace moebench
