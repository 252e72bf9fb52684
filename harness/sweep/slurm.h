// `moebench sweep FILE --slurm OUT.sbatch`: Slurm job-array scripts with one array task per
// run. Each task writes its own database (<sweep dir>/<run id>/run.db), because SQLite on a
// network file system is unsafe for concurrent writers; `moebench collect` merges them.
#pragma once

#include <string>
#include <vector>

#include "harness/sweep/manifest.h"
#include "harness/util/shell.h"  // ShellQuote

namespace moebench {

struct SlurmOptions {
  std::string job_name;
  std::string partition;  // "" = the cluster's default
  std::string time;       // e.g. "04:00:00"; "" = the partition's default
  std::string account;
  int gpus_per_run = 0;   // per run (all its ranks together), not per rank
  int cpus_per_run = 0;   // per run, split evenly over its ranks; 0 = not requested
  std::string exe;        // the moebench binary the tasks run (MOEBENCH_BIN overrides it)
  std::string db;         // the database `collect` merges into, named in the script's hints
  std::string cache_dir;  // the data cache the tasks use (MOEBENCH_CACHE), absolute
};

// Ranks (processes) a run needs: its world_size (1 for one process, whatever its virtual
// workers); the script runs a task with more than one rank under `srun`.
int RunRanks(const RunSpec& spec);

// Note [Slurm arrays]: every task of a job array reserves the same resources, so runs that
// need different numbers of ranks go to different arrays, one script each: the runs with the
// fewest ranks in `out` itself, the others in `<out stem>.ranks<N><out extension>`
// ("thor.sbatch" -> "thor.ranks2.sbatch"). --cpus-per-run and --gpus-per-run are per run: a run
// of N ranks asks for N tasks of cpus/N CPUs each (cpus must be a multiple of N) and for
// `--gpus=G` in all.
struct SlurmArray {
  std::string path;  // where the script goes
  int ranks = 1;
  std::vector<PlannedRun> runs;  // task i runs runs[i]
  std::string script;            // the text
};

// One array per rank count, in increasing rank order. `runs` must be non-empty; their spec
// files are expected in `sweep_dir`. Throws std::invalid_argument naming the flag when
// --cpus-per-run does not split evenly over a run's ranks.
std::vector<SlurmArray> SlurmArrays(const SlurmOptions& options, const std::string& sweep_dir,
                                    const std::vector<PlannedRun>& runs, const std::string& out);

// The script of one array: all `runs` must need the same number of ranks. `others` names the
// sweep's other scripts (mentioned in the header).
std::string SlurmScript(const SlurmOptions& options, const std::string& sweep_dir,
                        const std::vector<PlannedRun>& runs,
                        const std::vector<std::string>& others = {});

// <sweep dir>/slurm/tasks.json: for each array written, its script and its tasks' run ids, so
// that `collect` can name the tasks that produced no database.
std::string SlurmTasksPath(const std::string& sweep_dir);
void WriteSlurmTasks(const std::string& sweep_dir, const std::vector<SlurmArray>& arrays);

}  // namespace moebench
