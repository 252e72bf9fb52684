#include "harness/sweep/slurm.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace moebench {

int RunRanks(const RunSpec& spec) { return std::max(spec.world_size, 1); }

std::string SlurmScript(const SlurmOptions& options, const std::string& sweep_dir,
                        const std::vector<PlannedRun>& runs,
                        const std::vector<std::string>& others) {
  if (runs.empty()) throw std::invalid_argument("--slurm: no pending runs to submit");
  const int ranks = RunRanks(runs[0].spec);
  for (const PlannedRun& r : runs) {
    if (RunRanks(r.spec) != ranks) {
      throw std::logic_error("SlurmScript: runs of " + std::to_string(ranks) + " and " +
                             std::to_string(RunRanks(r.spec)) + " ranks in one array");
    }
  }
  if (options.cpus_per_run > 0 && options.cpus_per_run % ranks != 0) {
    throw std::invalid_argument("--cpus-per-run " + std::to_string(options.cpus_per_run) +
                                " is per run and must split evenly over the ranks of a run; run " +
                                runs[0].id + " has " + std::to_string(ranks) +
                                " ranks (world_size)");
  }
  std::ostringstream s;
  // #SBATCH lines are not shell: values are quoted only when they contain a space.
  auto directive = [&](const std::string& name, const std::string& value) {
    const bool plain = value.find_first_of(" \t'\"") == std::string::npos;
    s << "#SBATCH --" << name << "=" << (plain ? value : "\"" + value + "\"") << "\n";
  };
  s << "#!/bin/bash\n";
  directive("job-name", options.job_name.empty() ? "moebench" : options.job_name);
  directive("array", "0-" + std::to_string(runs.size() - 1));
  directive("ntasks", std::to_string(ranks));
  directive("output", sweep_dir + "/slurm/%A_%a.out");
  if (!options.partition.empty()) directive("partition", options.partition);
  if (!options.time.empty()) directive("time", options.time);
  if (!options.account.empty()) directive("account", options.account);
  // Per run: G GPUs for the whole task (its ranks use GPU LOCAL_RANK), C CPUs over its ranks.
  if (options.gpus_per_run > 0) directive("gpus", std::to_string(options.gpus_per_run));
  if (options.cpus_per_run > 0) {
    directive("cpus-per-task", std::to_string(options.cpus_per_run / ranks));
  }
  const std::string db = options.db.empty() ? "results/moebench.db" : options.db;
  s << "#\n"
    << "# Written by `moebench sweep --slurm`: " << runs.size()
    << (runs.size() == 1 ? " run of " : " runs of ") << ranks << (ranks == 1 ? " rank" : " ranks")
    << ", one array task each.\n"
    << "# Every task writes its own database under the sweep folder (SQLite on a network file\n"
    << "# system is unsafe for concurrent writers); merge them when the array is done:\n"
    << "#   moebench collect " << ShellQuote(sweep_dir) << " --db " << ShellQuote(db) << "\n";
  if (!others.empty()) {
    s << "# The sweep's runs with other rank counts are in their own arrays (a job array\n"
      << "# reserves the same for every task); submit them too:\n";
    for (const std::string& o : others) s << "#   sbatch " << ShellQuote(o) << "\n";
  }
  s << "# Each task writes a line here saying where its run's log is (the run's own output\n"
    << "# goes to <sweep dir>/<run id>/train.log) and, if the run fails, the log's last lines.\n"
    << "# To run one task by hand: SLURM_ARRAY_TASK_ID=0 bash THIS_SCRIPT\n"
    << "set -euo pipefail\n"
    << "MOEBENCH_DEFAULT=" << ShellQuote(options.exe) << "\n"
    << "MOEBENCH=\"${MOEBENCH_BIN:-$MOEBENCH_DEFAULT}\"\n"
    << "SWEEP_DIR=" << ShellQuote(sweep_dir) << "\n"
    << "# The data cache (tokenizers, corpora) the runs share; the one `sweep --slurm` used.\n"
    << "export MOEBENCH_CACHE=" << ShellQuote(options.cache_dir) << "\n"
    << "RUNS=(\n";
  for (const PlannedRun& r : runs) {
    s << "  " << ShellQuote(r.id) << "  # " << r.spec.method << " " << r.spec.size << " seed "
      << r.spec.seed << "\n";
  }
  s << ")\n"
    << "RANKS=(";  // per task, all equal in one array
  for (size_t i = 0; i < runs.size(); i++) s << (i ? " " : "") << ranks;
  s << ")\n"
    << ": \"${SLURM_ARRAY_TASK_ID:?submit with sbatch, or set SLURM_ARRAY_TASK_ID}\"\n"
    << "TASK=\"$SLURM_ARRAY_TASK_ID\"\n"
    << "RUN=\"${RUNS[$TASK]}\"\n"
    << "NRANKS=\"${RANKS[$TASK]}\"\n"
    << "RUN_DIR=\"$SWEEP_DIR/$RUN\"\n"
    << "LOG=\"$RUN_DIR/train.log\"\n"
    << "echo \"moebench array task $TASK (job ${SLURM_JOB_ID:-none} on $(hostname)): run $RUN, "
       "$NRANKS rank(s); its log: $LOG\"\n"
    << "failed() {\n"
    << "  echo \"moebench array task $TASK: run $RUN FAILED: $1; the last lines of $LOG:\" >&2\n"
    << "  tail -n 20 \"$LOG\" >&2 || true\n"
    << "}\n"
    << "trap 'failed \"the task script stopped at line $LINENO\"' ERR\n"
    << "mkdir -p \"$RUN_DIR\"\n"
    << "export OMP_WAIT_POLICY=\"${OMP_WAIT_POLICY:-PASSIVE}\"\n"
    << "export OPENBLAS_THREAD_TIMEOUT=\"${OPENBLAS_THREAD_TIMEOUT:-4}\"\n"
    << "cmd=(\"$MOEBENCH\" train --run-spec \"$RUN_DIR/spec.json\" --db \"$RUN_DIR/run.db\"\n"
    << "     --threads \"${SLURM_CPUS_PER_TASK:-0}\")\n"
    << "echo \"=== $(date -u +%FT%TZ) array task $TASK (job ${SLURM_JOB_ID:-none}): run $RUN\" "
       ">> \"$LOG\"\n"
    << "trap - ERR\n"
    << "status=0\n"
    << "if [ \"$NRANKS\" -gt 1 ]; then\n"
    << "  # srun of Slurm 22.05 does not pass the batch's --cpus-per-task on: say it again.\n"
    << "  srun --ntasks=\"$NRANKS\" --kill-on-bad-exit=1 "
       "${SLURM_CPUS_PER_TASK:+--cpus-per-task=\"$SLURM_CPUS_PER_TASK\"} \\\n"
    << "    \"${cmd[@]}\" >> \"$LOG\" 2>&1 || status=$?\n"
    << "else\n"
    << "  \"${cmd[@]}\" >> \"$LOG\" 2>&1 || status=$?\n"
    << "fi\n"
    << "if [ \"$status\" -ne 0 ]; then\n"
    << "  failed \"exit code $status\"\n"
    << "  exit \"$status\"\n"
    << "fi\n"
    << "echo \"moebench array task $TASK: run $RUN done; its database: $RUN_DIR/run.db\"\n";
  return s.str();
}

std::vector<SlurmArray> SlurmArrays(const SlurmOptions& options, const std::string& sweep_dir,
                                    const std::vector<PlannedRun>& runs, const std::string& out) {
  if (runs.empty()) throw std::invalid_argument("--slurm: no pending runs to submit");
  std::map<int, std::vector<PlannedRun>> by_ranks;
  for (const PlannedRun& r : runs) by_ranks[RunRanks(r.spec)].push_back(r);
  const std::filesystem::path p(out);
  std::vector<SlurmArray> arrays;
  for (auto& [ranks, group] : by_ranks) {
    SlurmArray a;
    a.ranks = ranks;
    a.runs = group;
    if (arrays.empty()) {
      a.path = out;
    } else {
      std::filesystem::path q = p;
      q.replace_filename(p.stem().string() + ".ranks" + std::to_string(ranks) +
                         p.extension().string());
      a.path = q.string();
    }
    arrays.push_back(std::move(a));
  }
  for (SlurmArray& a : arrays) {
    std::vector<std::string> others;
    for (const SlurmArray& b : arrays) {
      if (b.path != a.path) others.push_back(b.path);
    }
    a.script = SlurmScript(options, sweep_dir, a.runs, others);
  }
  return arrays;
}

std::string SlurmTasksPath(const std::string& sweep_dir) {
  return (std::filesystem::path(sweep_dir) / "slurm" / "tasks.json").string();
}

void WriteSlurmTasks(const std::string& sweep_dir, const std::vector<SlurmArray>& arrays) {
  nlohmann::json j;
  j["arrays"] = nlohmann::json::array();
  for (const SlurmArray& a : arrays) {
    nlohmann::json ids = nlohmann::json::array();
    for (const PlannedRun& r : a.runs) ids.push_back(r.id);
    j["arrays"].push_back({{"script", a.path}, {"ranks", a.ranks}, {"runs", ids}});
  }
  const std::string path = SlurmTasksPath(sweep_dir);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) throw std::runtime_error("--slurm: cannot write " + tmp);
    f << j.dump(2) << "\n";
    if (!f.flush()) throw std::runtime_error("--slurm: cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace moebench
