#include "harness/train/run_record.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/store/liveness.h"

namespace moebench {
namespace {

// Why `stored` belongs to another live writer, or "" when this process may take it.
std::string OtherWriter(const RunRow& stored) {
  if (stored.status != RunStatus::kRunning) return "";
  const std::string host = ThisHost();
  if (stored.host == host && (stored.pid == getpid() || stored.pid == getppid())) return "";
  if (!StaleReason(stored, host, kDefaultStaleAfter).empty()) return "";  // its writer is gone
  return "run " + stored.id + " is already being trained by process " + std::to_string(stored.pid) +
         " on " + (stored.host.empty() ? "?" : stored.host) + " (started " + stored.started_at +
         ", last heartbeat " + (stored.heartbeat_at.empty() ? "none" : stored.heartbeat_at) +
         "); one process writes a run: wait for it to end, or stop it (a run whose process is "
         "gone is taken over: at once on the same host, after " +
         std::to_string(kDefaultStaleAfter.count()) + " s without a heartbeat from another)";
}

}  // namespace

RunRecord::RunRecord(const RunSpec& spec, const RunEnv& env, bool writer) : run_id_(spec.RunId()) {
  if (!writer) return;
  store_ = std::make_unique<Store>(env.db);
  db_id_ = store_->DatabaseId();
}

RunRecord::~RunRecord() = default;

RunRecord::Claim RunRecord::ClaimRun(const RunRow& row) {
  row_ = row;
  if (!store_) return Claim::kTrain;
  const Store::WriterClaim claim = store_->ClaimRunForWriter(row_, OtherWriter);
  switch (claim.outcome) {
    case Store::ClaimOutcome::kFinished:
      row_ = *claim.before;
      return Claim::kFinished;
    case Store::ClaimOutcome::kBusy:
      busy_reason_ = claim.busy;
      return Claim::kBusy;
    case Store::ClaimOutcome::kClaimed:
      break;
  }
  row_ = claim.row;
  return Claim::kTrain;
}

void RunRecord::UpdateRow() {
  if (store_) store_->UpsertRun(row_);
}

void RunRecord::Finish(const Store::FinishCheck& check) {
  if (store_) store_->FinishRun(run_id_, check);
}

void RunRecord::Fail(const std::string& reason) noexcept {
  if (!store_) return;
  try {
    store_->SetRunStatus(run_id_, RunStatus::kFailed, reason, 1);
  } catch (const std::exception& e) {
    std::cerr << "moebench: could not record run " << run_id_ << " as failed (" << e.what()
              << "); it failed because: " << reason << std::endl;
  }
}

std::optional<double> RunRecord::Latest(const std::string& key) const {
  if (!store_) return std::nullopt;
  const auto latest = store_->LatestMetrics(run_id_);
  const auto it = latest.find(key);
  if (it == latest.end()) return std::nullopt;
  return it->second.value;
}

void WriteLaunchRecord(const std::string& db, const std::string& run_id) {
  const char* path = std::getenv("MOEBENCH_RUN_RECORD");
  if (path == nullptr || *path == '\0') return;
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(db, ec).string();
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json{{"db", ec ? db : absolute}, {"run_id", run_id}}.dump() << "\n";
}

std::optional<LaunchRecord> ReadLaunchRecord(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    return LaunchRecord{j.at("db").get<std::string>(), j.at("run_id").get<std::string>()};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace moebench
