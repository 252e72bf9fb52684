// `moebench sweep FILE`: running a manifest's runs (here, or as a Slurm job array). Merging
// per-run databases is cmd_collect.cpp; exporting results, cmd_export.cpp.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "datasets/cache_dir.h"
#include "harness/cli/cli_common.h"
#include "harness/store/store.h"
#include "harness/sweep/manifest.h"
#include "harness/sweep/progress.h"
#include "harness/sweep/runner.h"
#include "harness/sweep/slurm.h"
#include "harness/sweep/sweep_folder.h"
#include "harness/util/process.h"

namespace moebench {

namespace {

struct SweepArgs {
  std::string manifest, db = kDefaultDb, sweep_dir, format = "table";
  int jobs = 1, threads_per_job = 0;
  bool dry_run = false, retry_failed = false, per_run_db = false;
  std::vector<std::string> only;
  int64_t max_runs = -1;
  int stale_after = static_cast<int>(kDefaultStaleAfter.count());
  std::string slurm_out;
  SlurmOptions slurm;
};

// The value of `key` in a run, as text: a run-spec field, or a knob ("knobs.x" or "x").
bool SpecValue(const RunSpec& spec, const std::string& key, std::string* out) {
  const nlohmann::json j = spec.ToJson();
  std::string k = key;
  if (k.rfind("params.", 0) == 0) k = k.substr(7);
  if (j.contains(k) && k != "knobs") {
    const nlohmann::json& v = j[k];
    *out = v.is_string() ? v.get<std::string>() : v.dump();
    return true;
  }
  if (k.rfind("knobs.", 0) == 0) k = k.substr(6);
  auto it = spec.knobs.find(k);
  if (it == spec.knobs.end()) return false;
  *out = it->second;
  return true;
}

bool SameValue(const std::string& a, const std::string& b) {
  if (a == b) return true;
  char* end_a = nullptr;
  char* end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a);
  const double y = std::strtod(b.c_str(), &end_b);
  return !a.empty() && !b.empty() && *end_a == '\0' && *end_b == '\0' && x == y;
}

// --only KEY=VALUE: runs whose KEY equals one of the VALUEs given for it (numbers compare as
// numbers); different keys must all match.
std::vector<PlannedRun> SelectOnly(const std::vector<PlannedRun>& runs,
                                   const std::vector<std::string>& only) {
  std::map<std::string, std::vector<std::string>> wanted;
  for (const std::string& item : only) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw std::invalid_argument("--only: expected KEY=VALUE, got '" + item + "'");
    }
    wanted[item.substr(0, eq)].push_back(item.substr(eq + 1));
  }
  for (const auto& [key, values] : wanted) {
    bool known = false;
    std::string v;
    for (const PlannedRun& r : runs) known = known || SpecValue(r.spec, key, &v);
    if (!known) {
      throw std::invalid_argument("--only: no run of the manifest has a field or knob '" + key +
                                  "'");
    }
  }
  std::vector<PlannedRun> out;
  for (const PlannedRun& r : runs) {
    bool keep = true;
    for (const auto& [key, values] : wanted) {
      std::string v;
      bool any = false;
      if (SpecValue(r.spec, key, &v)) {
        for (const std::string& want : values) any = any || SameValue(v, want);
      }
      keep = keep && any;
    }
    if (keep) out.push_back(r);
  }
  return out;
}

// Status of each run in `db` (and in its per-run database under `sweep_dir`), "" = unknown.
std::map<std::string, std::string> KnownStatuses(const std::string& db,
                                                 const std::string& sweep_dir,
                                                 const std::vector<PlannedRun>& runs) {
  std::map<std::string, std::string> status;
  auto read = [&](const std::string& path, const std::string& id) {
    if (!std::filesystem::exists(path)) return;
    Store store(path, Store::Mode::kReadOnly);
    auto row = store.FindRun(id);
    if (!row || row->id != id) return;
    const std::string s = RunStatusName(row->status);
    if (status[id].empty() || s == "finished") status[id] = s;
  };
  for (const PlannedRun& r : runs) {
    status[r.id];
    read(db, r.id);
    read(RunDbPath(sweep_dir, r.id), r.id);
  }
  return status;
}

void PrintDryRun(const Manifest& m, const std::vector<PlannedRun>& runs,
                 const std::map<std::string, std::string>& status, const std::string& format) {
  if (format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const PlannedRun& r : runs) {
      arr.push_back({{"run_id", r.id},
                     {"origin", r.origin},
                     {"status", status.at(r.id).empty() ? "new" : status.at(r.id)},
                     {"spec", r.spec.ToJson()}});
    }
    std::cout << arr.dump(2) << std::endl;
    return;
  }
  // The columns: the fields and knobs that differ between runs.
  std::vector<std::string> varying;
  if (!runs.empty()) {
    const nlohmann::json first = runs[0].spec.ToJson();
    std::set<std::string> knob_names;
    for (const PlannedRun& r : runs) {
      for (const auto& [k, v] : r.spec.knobs) knob_names.insert(k);
    }
    for (const auto& [key, value] : first.items()) {
      if (key == "method" || key == "size" || key == "seed" || key == "knobs") continue;
      for (const PlannedRun& r : runs) {
        if (r.spec.ToJson()[key] != value) {
          varying.push_back(key);
          break;
        }
      }
    }
    // A knob is a column when two runs of the same method differ in it.
    for (const std::string& k : knob_names) {
      std::map<std::string, std::string> first_value;
      bool varies = false;
      for (const PlannedRun& r : runs) {
        std::string v;
        if (!SpecValue(r.spec, "knobs." + k, &v)) continue;
        auto [it, inserted] = first_value.emplace(r.spec.method, v);
        if (!inserted && it->second != v) varies = true;
      }
      if (varies) varying.push_back("knobs." + k);
    }
  }
  std::vector<std::string> columns = {"run", "method", "size", "seed"};
  for (const std::string& v : varying)
    columns.push_back(v.rfind("knobs.", 0) == 0 ? v.substr(6) : v);
  columns.push_back("max_steps");
  columns.push_back("status");
  std::vector<std::vector<std::string>> rows;
  for (const PlannedRun& r : runs) {
    std::vector<std::string> row = {r.id, r.spec.method, r.spec.size, std::to_string(r.spec.seed)};
    for (const std::string& v : varying) {
      std::string value;
      row.push_back(SpecValue(r.spec, v, &value) ? value : "-");
    }
    row.push_back(std::to_string(r.spec.max_steps));
    row.push_back(status.at(r.id).empty() ? "new" : status.at(r.id));
    rows.push_back(row);
  }
  std::cout << "sweep " << m.name << " (" << m.SweepId() << "): " << runs.size() << " runs";
  if (runs.size() != m.runs.size()) std::cout << " selected of " << m.runs.size();
  std::cout << "\n";
  PrintRows(columns, rows, format);
}

void WriteSlurm(const SweepArgs& a, const Manifest& m, const std::vector<PlannedRun>& selected,
                const std::string& sweep_dir) {
  const auto status = KnownStatuses(a.db, sweep_dir, selected);
  std::vector<PlannedRun> pending;
  for (const PlannedRun& r : selected) {
    if (status.at(r.id) == "finished") continue;
    if (a.max_runs >= 0 && static_cast<int64_t>(pending.size()) >= a.max_runs) break;
    pending.push_back(r);
  }
  if (pending.empty()) {
    std::cout << "nothing to submit: all " << selected.size() << " runs are finished in " << a.db
              << " or in their per-run databases\n";
    return;
  }
  SlurmOptions opt = a.slurm;
  if (opt.job_name.empty()) opt.job_name = "moebench-" + m.name;
  if (opt.exe.empty()) opt.exe = OwnExecutablePath();
  if (opt.exe.empty()) opt.exe = "moebench";
  namespace fs = std::filesystem;
  opt.db = fs::absolute(a.db).lexically_normal().string();
  opt.cache_dir = fs::absolute(ResolveDataCacheDir("")).lexically_normal().string();
  const std::string abs_dir = fs::absolute(sweep_dir).lexically_normal().string();
  const std::vector<SlurmArray> arrays = SlurmArrays(opt, abs_dir, pending, a.slurm_out);
  fs::create_directories(fs::path(abs_dir) / "slurm");
  for (const SlurmArray& array : arrays) {
    std::ofstream out(array.path, std::ios::trunc);
    if (!out) throw std::runtime_error("--slurm: cannot write " + array.path);
    out << array.script;
    out.close();
    if (!out) throw std::runtime_error("--slurm: cannot write " + array.path);
    chmod(array.path.c_str(), 0755);
  }
  WriteSlurmTasks(abs_dir, arrays);
  for (const SlurmArray& array : arrays) {
    std::cout << "wrote " << array.path << ": " << array.runs.size() << " array tasks of "
              << array.ranks << (array.ranks == 1 ? " rank" : " ranks") << "\n";
  }
  std::cout << "(" << selected.size() - pending.size() << " runs already finished)\n"
            << "submit: ";
  for (size_t i = 0; i < arrays.size(); ++i) {
    std::cout << (i ? " && " : " ") << "sbatch " << ShellQuote(arrays[i].path);
  }
  std::cout << "\nthen:    moebench collect " << ShellQuote(abs_dir) << " --db "
            << ShellQuote(opt.db) << "\n";
}

void PrintOutcome(const SweepRow& row, const SweepOutcome& o, int jobs) {
  std::cout << "sweep " << row.id << ": " << o.total << " runs: " << o.already_finished + o.finished
            << " finished (" << o.finished << " in this invocation), " << o.failed << " failed, "
            << o.pending << " pending; wall " << FormatNumber(o.wall_s) << " s\n";
  if (o.finished > 0 && o.run_process_s > 0) {
    const double inside = o.train_s + o.eval_s;
    const double slots = o.wall_s * jobs;
    std::cout << "time: run processes " << FormatNumber(o.run_process_s) << " s, of which training "
              << FormatNumber(o.train_s) << " s and validation " << FormatNumber(o.eval_s)
              << " s; start-up, data, model set-up, database writes, checkpoints and test "
                 "decoding take "
              << FormatNumber(100.0 * (o.run_process_s - inside) / o.run_process_s)
              << "% of the run processes' time; the runner's job slots were idle "
              << FormatNumber(100.0 * std::max(0.0, slots - o.run_process_s) / slots)
              << "% of wall x jobs\n";
  }
  if (o.failed > 0) {
    std::cout << "failed runs: moebench runs --sweep " << row.id
              << " --status failed; retry with --retry-failed\n";
  }
}

void RunSweepCommand(const SweepArgs& a) {
  const Manifest m = LoadManifest(a.manifest);
  const std::vector<PlannedRun> selected = a.only.empty() ? m.runs : SelectOnly(m.runs, a.only);
  const std::string sweep_dir = a.sweep_dir.empty() ? DefaultSweepDir(a.db, m.name) : a.sweep_dir;
  if (a.dry_run) {
    PrintDryRun(m, selected, KnownStatuses(a.db, sweep_dir, selected), a.format);
    return;
  }
  if (selected.empty()) throw std::invalid_argument("--only: no run of the manifest matches");
  const SweepRow row = MakeSweepRow(m, a.manifest);
  WriteSweepFolder(sweep_dir, m, row, m.runs);
  if (!a.slurm_out.empty()) {
    WriteSlurm(a, m, selected, sweep_dir);
    return;
  }
  RunnerOptions opt;
  opt.db = a.db;
  opt.sweep_dir = sweep_dir;
  opt.jobs = a.jobs;
  opt.threads_per_job = a.threads_per_job;
  opt.retry_failed = a.retry_failed;
  opt.max_runs = a.max_runs;
  opt.per_run_db = a.per_run_db;
  opt.stale_after = std::chrono::seconds(a.stale_after);
  opt.terminal = isatty(STDOUT_FILENO) != 0;
  const SweepOutcome o = RunSweep(row, selected, opt, std::cout);
  PrintOutcome(row, o, a.jobs);
  if (a.per_run_db) {
    std::cout << "per-run databases under " << sweep_dir << "; merge them with: moebench collect "
              << sweep_dir << " --db " << a.db << "\n";
  }
  if (o.interrupted) throw CLI::RuntimeError(130);
  if (o.failed > 0) throw CLI::RuntimeError(1);
}

}  // namespace

void RegisterSweepCommands(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* sweep = app.add_subcommand(
      "sweep", "run a manifest's runs: here, N at a time, resumable; or write a Slurm array");
  sweep
      ->add_option("manifest", a->manifest, "the sweep manifest (TOML), e.g. experiments/demo.toml")
      ->required()
      ->check(CLI::ExistingFile);
  AddDbOption(*sweep, a->db);
  sweep->add_option("--jobs,-j", a->jobs, "runs at a time")->capture_default_str();
  sweep
      ->add_option("--threads-per-job", a->threads_per_job,
                   "threads per run (0: the cores divided by --jobs)")
      ->capture_default_str();
  sweep->add_flag("--dry-run", a->dry_run, "print the expanded runs (and their status) and exit");
  sweep->add_option("--format", a->format, "--dry-run output: table | csv | json")
      ->capture_default_str();
  sweep->add_flag("--retry-failed", a->retry_failed, "run failed and killed runs again");
  sweep->add_option("--only", a->only,
                    "only runs with KEY=VALUE (a run-spec field or knob; repeatable: the same "
                    "key again = or, different keys = and)");
  sweep->add_option("--max-runs", a->max_runs, "start at most this many runs");
  sweep->add_flag("--per-run-db", a->per_run_db,
                  "each run writes its own database under the sweep folder (merge with collect)");
  sweep->add_option("--sweep-dir", a->sweep_dir,
                    "spec files, logs, per-run databases (default: <db folder>/sweeps/<name>)");
  sweep
      ->add_option("--stale-after", a->stale_after,
                   "seconds without a heartbeat after which a run on another host counts as dead")
      ->capture_default_str();
  sweep->add_option("--slurm", a->slurm_out,
                    "write a Slurm job-array script (one task per unfinished run) and exit");
  sweep->add_option("--partition", a->slurm.partition, "--slurm: partition");
  sweep->add_option("--time", a->slurm.time, "--slurm: time limit per run, e.g. 04:00:00");
  sweep->add_option("--account", a->slurm.account, "--slurm: account");
  sweep->add_option("--gpus-per-run", a->slurm.gpus_per_run,
                    "--slurm: GPUs per run (all its ranks together)");
  sweep->add_option("--cpus-per-run", a->slurm.cpus_per_run,
                    "--slurm: CPU cores per run (split evenly over its ranks)");
  sweep->callback([a]() { RunSweepCommand(*a); });
}

}  // namespace moebench
