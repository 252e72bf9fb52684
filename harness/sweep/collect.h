// `moebench collect DIR --db PATH`: merges the per-run databases under a folder (written by
// Slurm array tasks or `sweep --per-run-db`) into one, and tags the runs with the sweeps
// described by the sweep.json files found there. Idempotent: collecting twice, or a run that
// is in two files, never duplicates a row (Store::MergeFrom).
#pragma once

#include <string>
#include <vector>

#include "harness/store/store.h"

namespace moebench {

// An array task of `sweep --slurm` (listed in <sweep dir>/slurm/tasks.json) whose run has no
// database and is not finished in the target: it has not run yet, or failed before training.
struct MissingTask {
  std::string script;  // the array's script
  int task = 0;        // SLURM_ARRAY_TASK_ID
  std::string run_id;
  std::string slurm_output;  // Slurm's output of the task: <sweep dir>/slurm/<job>_<task>.out
  std::string log;           // the run's log
};

struct CollectStats {
  int databases = 0;
  int runs_taken = 0;
  int runs_kept = 0;
  int sweeps = 0;
  std::vector<std::string> unfinished;  // ids of merged runs that are not finished
  std::vector<MissingTask> missing;     // array tasks that produced no database
};

// Every *.db file under `dir` (recursively) except `target` itself.
CollectStats CollectDatabases(const std::string& dir, Store& target);

}  // namespace moebench
