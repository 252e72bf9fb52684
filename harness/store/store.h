// The results store: one SQLite database that every run of a sweep writes to and every
// query, export and report reads from (schema: schema.cpp, sketch: DESIGN.md "Results
// database"). Torch-free. Several processes may hold a Store on the same file at once (WAL
// journal, a 10 s busy timeout, retries where SQLite does not wait); one Store object is for
// one thread at a time.
//
// Empty strings and NULL: the optional text columns (runs.sweep_id, started_at, ended_at,
// error, heartbeat_at) are written as NULL when empty and read back as ""; runs.pid is NULL
// when 0. A NaN REAL is stored as NULL by SQLite and read back as NaN.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "harness/store/store_error.h"

namespace moebench {

enum class RunStatus { kPending, kRunning, kFinished, kFailed, kKilled };

// "pending", "running", "finished", "failed", "killed".
const char* RunStatusName(RunStatus status);
// The inverse of RunStatusName; throws StoreError naming the value and the valid ones.
RunStatus ParseRunStatus(const std::string& name);
// The SQLite library version in use, e.g. "3.40.1".
std::string SqliteVersion();
// finished, failed and killed: the run will not write again.
bool IsTerminal(RunStatus status);

struct SweepRow {
  std::string id, name, manifest, manifest_hash, created_at, git_commit;
  bool dirty = false;
};

struct RunRow {
  std::string id, sweep_id, method, size;
  int64_t seed = 0;
  std::string spec_json;
  RunStatus status = RunStatus::kPending;
  std::string started_at, ended_at;
  std::optional<int> exit_code;
  std::string error, host, device;
  int world_size = 1, threads = 0;
  std::string libs = "{}";
  int64_t params_total = 0, params_active = 0;
  std::string heartbeat_at;
  int64_t pid = 0;
};

struct MetricRow {
  int64_t step = 0;
  double wall_s = 0;
  std::string key;
  double value = 0;
};

struct EvalRow {
  std::string run_id;
  int64_t step = 0;
  double wall_s = 0;
  std::string split, lang;
  int k = 0;
  double bleu = 0;
  std::optional<double> chrf;
  std::string signature, decoding = "{}";
  std::optional<double> loss;
  int64_t n_sentences = 0;
};

struct CommRow {
  std::string run_id;
  int64_t step = 0;
  int layer = 0;
  std::string phase;  // "fwd", "bwd", "total", ...
  int64_t calls = 0, bytes_local = 0, bytes_intra_node = 0, bytes_inter_node = 0, wire_bytes = 0,
          wire_intra_node = 0, wire_inter_node = 0;
  double ms = 0;          // measured
  double modeled_ms = 0;  // network model (schema version 3; 0 in rows written before)
};

struct ExpertLoadRow {
  std::string run_id;
  int64_t step = 0;
  int layer = 0, expert = 0;
  int64_t tokens = 0, dropped = 0;
};

// The result of a free SQL query: column names and every value as text (NULL -> nullopt).
struct OutputRow {
  std::string run_id;
  int64_t step = 0;
  std::string split, lang;
  int k = 0;
  int64_t idx = 0;  // sentence index in the split
  std::string hyp, ref;
};

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
};

class Store {
 public:
  static constexpr int kSchemaVersion = 4;
  enum class Mode { kReadWrite, kReadOnly };

  // Read-write creates the file (and its parent directory) when missing, switches it to WAL
  // and migrates it to kSchemaVersion. Read-only requires an existing file at exactly
  // kSchemaVersion. Either fails when the file's schema is newer than this build knows.
  explicit Store(const std::string& path, Mode mode = Mode::kReadWrite);
  ~Store();
  Store(Store&& other) noexcept;
  Store& operator=(Store&& other) noexcept;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int SchemaVersion() const;
  const std::string& path() const;
  Mode mode() const;

  // ---- sweeps and runs (store.cpp) ----
  // Inserts the sweep, or updates every column of the one with the same id.
  void UpsertSweep(const SweepRow& sweep);
  // By exact id; otherwise the most recently created sweep with that name.
  std::optional<SweepRow> GetSweep(const std::string& id_or_name) const;
  // Every sweep, oldest first.
  std::vector<SweepRow> ListSweeps() const;

  // Inserts the run, or updates every column of the one with the same id.
  void UpsertRun(const RunRow& run);
  // Sets status, error ("" -> NULL) and exit_code. To running: started_at and heartbeat_at
  // become now and ended_at NULL. To finished/failed/killed: ended_at becomes now. Throws when
  // there is no such run.
  void SetRunStatus(const std::string& run_id, RunStatus status, const std::string& error = "",
                    std::optional<int> exit_code = std::nullopt);
  // Sets heartbeat_at to now and pid. Throws when there is no such run.
  void Heartbeat(const std::string& run_id, int64_t pid);
  // The run with this exact id, else the only run whose id starts with it; nullopt when none;
  // StoreError naming the candidates when several match.
  std::optional<RunRow> FindRun(const std::string& id_prefix) const;
  // Runs in insertion order, optionally of one sweep and/or one status ("" = any; an unknown
  // status name throws).
  std::vector<RunRow> ListRuns(const std::string& sweep_id = "",
                               const std::string& status = "") const;

  // ---- for the sweep runner and `collect` (store_sweep.cpp) ----
  // Inserts the run unless a run with its id exists; true when it inserted.
  bool InsertRunIfAbsent(const RunRow& run);
  // Tags the run as belonging to `sweep_id` (a run in two sweeps carries the last one).
  void SetRunSweep(const std::string& run_id, const std::string& sweep_id);
  // pending -> running, owned by `pid` on `host`, in one statement: true when this caller
  // won the run, false when it was not pending (another runner took it, or it is done).
  bool ClaimRun(const std::string& run_id, int64_t pid, const std::string& host);
  // running -> pending with `reason` as its error, only if the run is still running under
  // `pid` (0: any pid): true when it changed. For a run whose process is gone.
  bool RequeueRun(const std::string& run_id, int64_t pid, const std::string& reason);

  // ---- one writer's run record (store.cpp) ----
  // This database's identity (schema version 4): 32 hex digits drawn when it was created.
  std::string DatabaseId() const;
  enum class ClaimOutcome { kClaimed, kFinished, kBusy };
  struct WriterClaim {
    ClaimOutcome outcome = ClaimOutcome::kClaimed;
    std::optional<RunRow> before;  // the stored row, when there was one
    std::string busy;              // kBusy: why (another live writer holds the run)
    RunRow row;                    // kClaimed: the row as written
  };
  // The process that is about to train `run` takes it, in one transaction: a finished run is
  // left alone (kFinished); a stored run for which `busy(stored)` gives a reason (another live
  // writer owns it) is left alone (kBusy); otherwise `run` is written, inserted or replacing
  // every stored column, as running, started and heartbeat now (kClaimed); a `run` without a
  // sweep keeps the stored run's sweep.
  WriterClaim ClaimRunForWriter(const RunRow& run,
                                const std::function<std::string(const RunRow&)>& busy);
  // What a finished run must have stored.
  struct FinishCheck {
    int64_t final_step = 0;
    std::vector<std::string> metric_keys;  // each with a row at final_step
    std::vector<std::string> eval_splits;  // each with an evals row at final_step
    bool comm_rows = false;                // at least one comm row
  };
  // Marks the run finished (exit code 0) only when the rows `check` names are stored, checked
  // in the same transaction; otherwise throws StoreError naming what is missing and leaves the
  // run as it was.
  void FinishRun(const std::string& run_id, const FinishCheck& check);
  // Read-only SQL with bound parameters (text, integer or real), on the query connection.
  using SqlParam = std::variant<std::string, int64_t, double>;
  QueryResult QueryWithParams(const std::string& sql, const std::vector<SqlParam>& params) const;
  struct MergeStats {
    int runs_taken = 0;  // runs copied (new here, or a better state than the one here)
    int runs_kept = 0;   // runs where this database already had as good a state
    int sweeps = 0;      // sweep rows copied
  };
  // Copies the runs of the database at `path` (same schema version) with all their rows into
  // this one, in one transaction. A run already here is replaced, rows and all, only when the
  // other copy is further along (finished > failed/killed > running > pending; ties: the later
  // end or heartbeat), so merging twice, or in any order, never duplicates a row.
  MergeStats MergeFrom(const std::string& path);

  // ---- per-step logs (store_logs.cpp); each Log* call is one transaction ----
  // A row with the same (run_id, key, step) as a stored one replaces it. latest_metrics keeps,
  // per key, the row with the highest step.
  void LogMetrics(const std::string& run_id, const std::vector<MetricRow>& rows);
  // key -> the row with the highest step.
  std::map<std::string, MetricRow> LatestMetrics(const std::string& run_id) const;
  // One key's rows by increasing step.
  std::vector<MetricRow> MetricHistory(const std::string& run_id, const std::string& key) const;

  // Rows with the same unique key as stored ones replace them (see schema.cpp).
  void LogEvals(const std::vector<EvalRow>& rows);
  std::vector<EvalRow> Evals(const std::string& run_id) const;  // by step, split, lang, k
  void LogComm(const std::vector<CommRow>& rows);
  std::vector<CommRow> Comm(const std::string& run_id) const;  // by step, layer, phase
  void LogExpertLoad(const std::vector<ExpertLoadRow>& rows);
  // Per-sentence decoding outputs (schema version 2), one transaction.
  void LogOutputs(const std::vector<OutputRow>& rows);
  std::vector<OutputRow> Outputs(const std::string& run_id, const std::string& split,
                                 int k) const;                             // by step, idx
  std::vector<ExpertLoadRow> ExpertLoad(const std::string& run_id) const;  // by step, layer, expert

  // Drops the run's metrics/evals/comm/expert_load rows with step > `step` (a run resuming
  // from the checkpoint of `step`) and recomputes its latest_metrics, in one transaction.
  void DeleteRunDataAfter(const std::string& run_id, int64_t step);

  // ---- free SQL (store_query.cpp) ----
  // Runs `sql` (one statement, or several separated by ';') on a read-only connection and
  // returns the result of the last statement that has columns. Refuses, before running any,
  // if one statement would write: StoreError("query: the database is opened read-only;
  // refusing a statement that writes: <statement>").
  QueryResult Query(const std::string& sql) const;

 private:
  struct Impl;  // store_impl.h
  std::unique_ptr<Impl> impl_;
};

}  // namespace moebench
