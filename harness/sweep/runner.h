// Runs a sweep's runs on this machine: each pending run as its own `moebench train` process,
// `jobs` at a time, the cores split between them; finished runs skipped, interrupted ones
// resumed, failed ones recorded with their reason and log tail while the others go on.
// See Note [Sweep runner] in runner.cpp.
#pragma once

#include <chrono>
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/store/liveness.h"
#include "harness/sweep/manifest.h"

namespace moebench {

struct RunnerOptions {
  std::string db;         // the shared database (ignored with per_run_db)
  std::string sweep_dir;  // spec files, logs (and per-run databases)
  int jobs = 1;
  int threads_per_job = 0;  // 0: the cores divided by jobs (at least 1)
  bool retry_failed = false;
  int64_t max_runs = -1;    // start at most this many runs (-1: no limit)
  bool per_run_db = false;  // each run writes <sweep dir>/<run id>/run.db (merge with collect)
  std::string exe;          // the moebench binary ("": this process's own executable)
  std::chrono::seconds stale_after = kDefaultStaleAfter;
  double poll_seconds = 0.25;
  bool terminal = false;  // a live display instead of log lines
};

struct SweepOutcome {
  int total = 0;             // runs in the selection
  int already_finished = 0;  // skipped: finished before this invocation
  int finished = 0;          // finished by this invocation
  int failed = 0;            // failed or killed (in this invocation or before)
  int pending = 0;           // left pending (--max-runs, or the sweep was stopped)
  bool interrupted = false;  // stopped by SIGINT/SIGTERM
  // Where the time went, for runs this invocation finished: wall-clock of their processes,
  // and the training and validation time they report (train_seconds, eval_seconds).
  double wall_s = 0, run_process_s = 0, train_s = 0, eval_s = 0;
};

// Runs `runs` (the manifest's, possibly filtered) of the sweep `sweep`. The spec files must
// already be in opt.sweep_dir (WriteSweepFolder). Progress goes to `out`.
SweepOutcome RunSweep(const SweepRow& sweep, const std::vector<PlannedRun>& runs,
                      const RunnerOptions& opt, std::ostream& out);

// "killed by signal 9 (SIGKILL)".
std::string DescribeSignal(int signal);

}  // namespace moebench
