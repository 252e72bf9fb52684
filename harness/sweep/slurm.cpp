#include "harness/sweep/slurm.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace moebench {

int RunRanks(const RunSpec& spec) { return std::max(spec.world_size, 1); }

std::string SlurmScript(const SlurmOptions& options, const std::string& sweep_dir,
                        const std::vector<PlannedRun>& runs) {
  if (runs.empty()) throw std::invalid_argument("--slurm: no pending runs to submit");
  int max_ranks = 1;
  for (const PlannedRun& r : runs) max_ranks = std::max(max_ranks, RunRanks(r.spec));
  std::ostringstream s;
  // #SBATCH lines are not shell: values are quoted only when they contain a space.
  auto directive = [&](const std::string& name, const std::string& value) {
    const bool plain = value.find_first_of(" \t'\"") == std::string::npos;
    s << "#SBATCH --" << name << "=" << (plain ? value : "\"" + value + "\"") << "\n";
  };
  s << "#!/bin/bash\n";
  directive("job-name", options.job_name.empty() ? "moebench" : options.job_name);
  directive("array", "0-" + std::to_string(runs.size() - 1));
  directive("ntasks", std::to_string(max_ranks));
  directive("output", sweep_dir + "/slurm/%A_%a.out");
  if (!options.partition.empty()) directive("partition", options.partition);
  if (!options.time.empty()) directive("time", options.time);
  if (!options.account.empty()) directive("account", options.account);
  if (options.gpus_per_run > 0) directive("gpus-per-task", std::to_string(options.gpus_per_run));
  if (options.cpus_per_run > 0) directive("cpus-per-task", std::to_string(options.cpus_per_run));
  s << "#\n"
    << "# Written by `moebench sweep --slurm`: " << runs.size()
    << " runs, one array task each. Every task writes its own database under the sweep\n"
    << "# folder (SQLite on a network file system is unsafe for concurrent writers); merge\n"
    << "# them when the array is done:\n"
    << "#   moebench collect " << ShellQuote(sweep_dir) << " --db results/moebench.db\n"
    << "# To run one task by hand: SLURM_ARRAY_TASK_ID=0 bash THIS_SCRIPT\n"
    << "set -euo pipefail\n"
    << "MOEBENCH=\"${MOEBENCH_BIN:-" << ShellQuote(options.exe) << "}\"\n"
    << "SWEEP_DIR=" << ShellQuote(sweep_dir) << "\n"
    << "RUNS=(\n";
  for (const PlannedRun& r : runs) {
    s << "  " << ShellQuote(r.id) << "  # " << r.spec.method << " " << r.spec.size << " seed "
      << r.spec.seed << "\n";
  }
  s << ")\nRANKS=(";
  for (size_t i = 0; i < runs.size(); i++) s << (i ? " " : "") << RunRanks(runs[i].spec);
  s << ")\n"
    << ": \"${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}\"\n"
    << "RUN=\"${RUNS[$SLURM_ARRAY_TASK_ID]}\"\n"
    << "RUN_DIR=\"$SWEEP_DIR/$RUN\"\n"
    << "export OMP_WAIT_POLICY=\"${OMP_WAIT_POLICY:-PASSIVE}\"\n"
    << "export OPENBLAS_THREAD_TIMEOUT=\"${OPENBLAS_THREAD_TIMEOUT:-4}\"\n"
    << "cmd=(\"$MOEBENCH\" train --run-spec \"$RUN_DIR/spec.json\" --db \"$RUN_DIR/run.db\"\n"
    << "     --threads \"${SLURM_CPUS_PER_TASK:-0}\")\n"
    << "echo \"=== $(date -u +%FT%TZ) array task $SLURM_ARRAY_TASK_ID: run $RUN\" "
       ">> \"$RUN_DIR/train.log\"\n"
    << "if [ \"${RANKS[$SLURM_ARRAY_TASK_ID]}\" -gt 1 ]; then\n"
    << "  srun --ntasks=\"${RANKS[$SLURM_ARRAY_TASK_ID]}\" \"${cmd[@]}\" >> \"$RUN_DIR/train.log\" "
       "2>&1\n"
    << "else\n"
    << "  \"${cmd[@]}\" >> \"$RUN_DIR/train.log\" 2>&1\n"
    << "fi\n";
  return s.str();
}

}  // namespace moebench
