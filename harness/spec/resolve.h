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

// Resolves the method's knobs into the spec (defaults included), so the run id covers them,
// and sets workers = world_size for runs on ranks. Idempotent.
void ResolveKnobs(RunSpec& spec);

}  // namespace moebench
