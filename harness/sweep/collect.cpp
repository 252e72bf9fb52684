#include "harness/sweep/collect.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "harness/sweep/sweep_folder.h"

namespace moebench {

CollectStats CollectDatabases(const std::string& dir, Store& target) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw std::invalid_argument("collect: no such folder: " + dir);
  std::error_code ec;
  const fs::path target_path = fs::weakly_canonical(target.path(), ec);
  std::vector<std::string> dbs, sweep_files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const fs::path p = entry.path();
    if (p.extension() == ".db") {
      if (fs::weakly_canonical(p, ec) == target_path) continue;
      dbs.push_back(p.string());
    } else if (p.filename() == "sweep.json") {
      sweep_files.push_back(p.string());
    }
  }
  std::sort(dbs.begin(), dbs.end());
  std::sort(sweep_files.begin(), sweep_files.end());
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
  return stats;
}

}  // namespace moebench
