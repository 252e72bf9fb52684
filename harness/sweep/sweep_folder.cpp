#include "harness/sweep/sweep_folder.h"

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "harness/util/shell.h"
#include "harness/util/time.h"

namespace moebench {
namespace {

// Output of a shell command, trailing newline dropped; "" when it fails.
std::string CommandOutput(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  if (pclose(pipe) != 0) return "";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

void WriteFileAtomically(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

std::string DefaultSweepDir(const std::string& db, const std::string& sweep_name) {
  return (std::filesystem::path(db).parent_path() / "sweeps" / sweep_name).string();
}

std::string RunSpecPath(const std::string& sweep_dir, const std::string& run_id) {
  return (std::filesystem::path(sweep_dir) / run_id / "spec.json").string();
}

std::string RunLogPath(const std::string& sweep_dir, const std::string& run_id) {
  return (std::filesystem::path(sweep_dir) / run_id / "train.log").string();
}

std::string RunDbPath(const std::string& sweep_dir, const std::string& run_id) {
  return (std::filesystem::path(sweep_dir) / run_id / "run.db").string();
}

SweepRow MakeSweepRow(const Manifest& manifest, const std::string& manifest_path) {
  SweepRow row;
  row.id = manifest.SweepId();
  row.name = manifest.name;
  row.manifest = manifest.Text();
  row.manifest_hash = manifest.Hash();
  row.created_at = NowIso8601();
  std::string dir = std::filesystem::path(manifest_path).parent_path().string();
  if (dir.empty()) dir = ".";
  row.git_commit = CommandOutput("git -C " + ShellQuote(dir) + " rev-parse HEAD 2>/dev/null");
  if (!row.git_commit.empty()) {
    row.dirty = !CommandOutput("git -C " + ShellQuote(dir) +
                               " status --porcelain --untracked-files=no 2>/dev/null")
                     .empty();
  }
  return row;
}

void WriteSweepFolder(const std::string& sweep_dir, const Manifest& manifest, const SweepRow& sweep,
                      const std::vector<PlannedRun>& runs) {
  std::filesystem::create_directories(sweep_dir);
  WriteFileAtomically((std::filesystem::path(sweep_dir) / "manifest.toml").string(),
                      manifest.Text());
  nlohmann::json ids = nlohmann::json::array();
  for (const PlannedRun& r : runs) ids.push_back(r.id);
  const nlohmann::json j = {{"sweep",
                             {{"id", sweep.id},
                              {"name", sweep.name},
                              {"manifest", sweep.manifest},
                              {"manifest_hash", sweep.manifest_hash},
                              {"created_at", sweep.created_at},
                              {"git_commit", sweep.git_commit},
                              {"dirty", sweep.dirty}}},
                            {"runs", ids}};
  WriteFileAtomically((std::filesystem::path(sweep_dir) / "sweep.json").string(), j.dump(2));
  for (const PlannedRun& r : runs) {
    WriteFileAtomically(RunSpecPath(sweep_dir, r.id), r.spec.ToJson().dump(2) + "\n");
  }
}

SweepRow ReadSweepJson(const std::string& path, std::vector<std::string>* run_ids) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read");
  try {
    nlohmann::json j;
    in >> j;
    const nlohmann::json& s = j.at("sweep");
    SweepRow row;
    row.id = s.at("id").get<std::string>();
    row.name = s.at("name").get<std::string>();
    row.manifest = s.at("manifest").get<std::string>();
    row.manifest_hash = s.at("manifest_hash").get<std::string>();
    row.created_at = s.at("created_at").get<std::string>();
    row.git_commit = s.at("git_commit").get<std::string>();
    row.dirty = s.at("dirty").get<bool>();
    if (run_ids != nullptr) *run_ids = j.at("runs").get<std::vector<std::string>>();
    return row;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not a sweep.json written by moebench sweep: " + e.what());
  }
}

std::string FileTail(const std::string& path, int lines) {
  std::ifstream in(path);
  if (!in) return "";
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& l : tail) out += l + "\n";
  return out;
}

}  // namespace moebench
