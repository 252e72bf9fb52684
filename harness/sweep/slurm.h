// `moebench sweep FILE --slurm OUT.sbatch`: a Slurm job-array script with one array task per
// run. Each task writes its own database (<sweep dir>/<run id>/run.db), because SQLite on a
// network file system is unsafe for concurrent writers; `moebench collect` merges them.
#pragma once

#include <string>
#include <vector>

#include "datasets/shell.h"  // ShellQuote
#include "harness/sweep/manifest.h"

namespace moebench {

struct SlurmOptions {
  std::string job_name;
  std::string partition;  // "" = the cluster's default
  std::string time;       // e.g. "04:00:00"; "" = the partition's default
  std::string account;
  int gpus_per_run = 0;
  int cpus_per_run = 0;  // 0 = not requested (the task uses all it is given)
  std::string exe;       // the moebench binary the tasks run (MOEBENCH_BIN overrides it)
};

// Ranks (processes) a run needs: 1 until multi-process runs exist (`workers` are virtual
// workers inside one process); the script runs a task with more than one rank under `srun`.
int RunRanks(const RunSpec& spec);

// The script text. `runs` must be non-empty; their spec files are expected in `sweep_dir`.
std::string SlurmScript(const SlurmOptions& options, const std::string& sweep_dir,
                        const std::vector<PlannedRun>& runs);

}  // namespace moebench
