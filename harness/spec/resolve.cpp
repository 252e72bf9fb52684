#include "harness/spec/resolve.h"

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
