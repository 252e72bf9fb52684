// `moebench collect DIR --db PATH`: merges the per-run databases under a folder (written by
// Slurm array tasks or `sweep --per-run-db`) into one, and tags the runs with the sweeps
// described by the sweep.json files found there. Idempotent: collecting twice, or a run that
// is in two files, never duplicates a row (Store::MergeFrom).
#pragma once

#include <string>
#include <vector>

#include "harness/store/store.h"

namespace moebench {

struct CollectStats {
  int databases = 0;
  int runs_taken = 0;
  int runs_kept = 0;
  int sweeps = 0;
  std::vector<std::string> unfinished;  // ids of merged runs that are not finished
};

// Every *.db file under `dir` (recursively) except `target` itself.
CollectStats CollectDatabases(const std::string& dir, Store& target);

}  // namespace moebench
