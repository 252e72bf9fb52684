// The run's row in the results database, from the point of view of the one process that
// writes it (rank 0 of a process group, or the only process): claim the run, record its
// provenance, finish it only with its results stored, or record why it failed. Other ranks
// hold a RunRecord without a database; every call is then a no-op. See Note [One writer].
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "harness/spec/run_spec.h"
#include "harness/store/store.h"

namespace moebench {

// Note [One writer]
// Two processes training the same run into one database would both write its metrics and
// both overwrite its checkpoint. A process takes a run with Store::ClaimRunForWriter: a run
// that is `running` under another live process (on this host: its pid is alive; on another
// host: its heartbeat is fresher than kDefaultStaleAfter) is refused, not shared. The sweep
// runner claims a run before it starts its `train` child, so a `running` row owned by this
// process's parent is taken over, as is one whose process is gone (kill -9).
class RunRecord {
 public:
  RunRecord(const RunSpec& spec, const RunEnv& env, bool writer);
  ~RunRecord();

  bool writer() const { return store_ != nullptr; }
  Store* store() { return store_.get(); }
  // This database's id (the writer's; "" on other ranks until set by the caller).
  const std::string& db_id() const { return db_id_; }
  void set_db_id(const std::string& id) { db_id_ = id; }

  enum class Claim { kTrain, kFinished, kBusy };
  // Takes the run for this process (Note [One writer]); `row` is what the run row says about
  // this attempt. kBusy: busy_reason() says who holds it; nothing was written.
  Claim ClaimRun(const RunRow& row);
  const std::string& busy_reason() const { return busy_reason_; }
  const RunRow& row() const { return row_; }
  RunRow& mutable_row() { return row_; }
  // Rewrites the run row (its provenance, once the model is built).
  void UpdateRow();

  // Marks the run finished; throws StoreError when its results are incomplete.
  void Finish(const Store::FinishCheck& check);
  // Records the run as failed with `reason`. Never throws: when the database cannot take it
  // (a full disk, say) the reason goes to stderr.
  void Fail(const std::string& reason) noexcept;

  // A metric's latest stored value, or nullopt (no database, or no such metric).
  std::optional<double> Latest(const std::string& key) const;

 private:
  std::string run_id_;
  std::unique_ptr<Store> store_;
  std::string db_id_, busy_reason_;
  RunRow row_;
};

// `moebench launch` sets MOEBENCH_RUN_RECORD to a file in which the writer records which run
// of which database it trains, so that the launcher can mark the run failed when a rank dies
// by a signal (the rank itself records nothing then). No-op without the variable.
void WriteLaunchRecord(const std::string& db, const std::string& run_id);
struct LaunchRecord {
  std::string db, run_id;
};
std::optional<LaunchRecord> ReadLaunchRecord(const std::string& path);

}  // namespace moebench
