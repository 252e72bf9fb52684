#include "harness/sweep/collect.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "harness/sweep/sweep_folder.h"

namespace moebench {

namespace {

// The array tasks listed in a slurm/tasks.json whose run has no database and is not finished
// in the target.
void FindMissingTasks(const std::string& tasks_file, Store& target, CollectStats& stats) {
  namespace fs = std::filesystem;
  const fs::path sweep_dir = fs::path(tasks_file).parent_path().parent_path();
  std::ifstream f(tasks_file);
  nlohmann::json j;
  try {
    f >> j;
  } catch (const std::exception& e) {
    throw std::runtime_error("collect: " + tasks_file + " is not valid JSON: " + e.what());
  }
  if (!j.contains("arrays") || !j["arrays"].is_array()) {
    throw std::runtime_error("collect: " + tasks_file + " has no \"arrays\" list");
  }
  for (const auto& a : j["arrays"]) {
    const std::string script = a.value("script", std::string());
    const auto& runs = a.at("runs");
    for (size_t i = 0; i < runs.size(); ++i) {
      const std::string id = runs[i].get<std::string>();
      if (fs::exists(RunDbPath(sweep_dir.string(), id))) continue;
      auto run = target.FindRun(id);
      if (run && run->id == id && run->status == RunStatus::kFinished) continue;
      MissingTask m;
      m.script = script;
      m.task = static_cast<int>(i);
      m.run_id = id;
      m.slurm_output = (sweep_dir / "slurm" / ("*_" + std::to_string(i) + ".out")).string();
      m.log = RunLogPath(sweep_dir.string(), id);
      stats.missing.push_back(m);
    }
  }
}

}  // namespace

CollectStats CollectDatabases(const std::string& dir, Store& target) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw std::invalid_argument("collect: no such folder: " + dir);
  std::error_code ec;
  const fs::path target_path = fs::weakly_canonical(target.path(), ec);
  std::vector<std::string> dbs, sweep_files, task_files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const fs::path p = entry.path();
    if (p.extension() == ".db") {
      if (fs::weakly_canonical(p, ec) == target_path) continue;
      dbs.push_back(p.string());
    } else if (p.filename() == "sweep.json") {
      sweep_files.push_back(p.string());
    } else if (p.filename() == "tasks.json" && p.parent_path().filename() == "slurm") {
      task_files.push_back(p.string());
    }
  }
  std::sort(dbs.begin(), dbs.end());
  std::sort(sweep_files.begin(), sweep_files.end());
  std::sort(task_files.begin(), task_files.end());
  CollectStats stats;
  std::set<std::string> merged_ids;
  for (const std::string& db : dbs) {
    const Store::MergeStats m = target.MergeFrom(db);
    stats.databases++;
    stats.runs_taken += m.runs_taken;
    stats.runs_kept += m.runs_kept;
    stats.sweeps += m.sweeps;
  }
  for (const std::string& file : sweep_files) {
    std::vector<std::string> ids;
    SweepRow row = ReadSweepJson(file, &ids);
    if (auto existing = target.GetSweep(row.id); existing && existing->id == row.id) {
      row.created_at = existing->created_at;
    } else {
      stats.sweeps++;
    }
    target.UpsertSweep(row);
    for (const std::string& id : ids) {
      auto run = target.FindRun(id);
      if (!run || run->id != id) continue;
      if (run->sweep_id != row.id) target.SetRunSweep(id, row.id);
      if (run->status != RunStatus::kFinished) stats.unfinished.push_back(id);
    }
  }
  for (const std::string& file : task_files) FindMissingTasks(file, target, stats);
  return stats;
}

}  // namespace moebench
