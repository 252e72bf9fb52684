#include "harness/store/store.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "harness/store/schema.h"
#include "harness/store/store_impl.h"
#include "harness/util/time.h"

namespace moebench {
namespace {

// How many candidates an ambiguous run-id prefix error lists.
constexpr int kMaxAmbiguousCandidates = 10;

struct RunStatusEntry {
  RunStatus status;
  const char* name;
};

constexpr RunStatusEntry kRunStatusNames[] = {
    {RunStatus::kPending, "pending"},   {RunStatus::kRunning, "running"},
    {RunStatus::kFinished, "finished"}, {RunStatus::kFailed, "failed"},
    {RunStatus::kKilled, "killed"},
};

const char* const kSweepColumns =
    "id, name, manifest, manifest_hash, created_at, git_commit, dirty";

const char* const kRunColumns =
    "id, sweep_id, method, size, seed, spec_json, status, started_at, ended_at, exit_code, "
    "error, host, device, world_size, threads, libs, params_total, params_active, heartbeat_at, "
    "pid";

SweepRow ReadSweep(const Statement& statement) {
  SweepRow sweep;
  sweep.id = statement.Text(0);
  sweep.name = statement.Text(1);
  sweep.manifest = statement.Text(2);
  sweep.manifest_hash = statement.Text(3);
  sweep.created_at = statement.Text(4);
  sweep.git_commit = statement.Text(5);
  sweep.dirty = statement.Int64(6) != 0;
  return sweep;
}

// Reads a row selected with kRunColumns.
RunRow ReadRun(const Statement& statement) {
  RunRow run;
  run.id = statement.Text(0);
  run.sweep_id = statement.Text(1);
  run.method = statement.Text(2);
  run.size = statement.Text(3);
  run.seed = statement.Int64(4);
  run.spec_json = statement.Text(5);
  run.status = ParseRunStatus(statement.Text(6));
  run.started_at = statement.Text(7);
  run.ended_at = statement.Text(8);
  if (!statement.IsNull(9)) run.exit_code = static_cast<int>(statement.Int64(9));
  run.error = statement.Text(10);
  run.host = statement.Text(11);
  run.device = statement.Text(12);
  run.world_size = static_cast<int>(statement.Int64(13));
  run.threads = static_cast<int>(statement.Int64(14));
  run.libs = statement.Text(15);
  run.params_total = statement.Int64(16);
  run.params_active = statement.Int64(17);
  run.heartbeat_at = statement.Text(18);
  run.pid = statement.Int64(19);
  return run;
}

void RequireNonEmpty(const std::string& path, const std::string& operation, const char* field,
                     const std::string& value) {
  if (value.empty()) throw StoreError(path + ": " + operation + ": " + field + " is empty");
}

// Switches the file to WAL so that readers never block the writer and vice versa; WAL is a
// property of the file, so this is a no-op on every open after the first.
void EnableWal(Connection& connection) {
  const auto journal_mode = [&connection]() {
    CachedStatement statement = connection.Prepare("PRAGMA journal_mode");
    if (!statement->Step()) connection.Fail("cannot read the journal mode", "PRAGMA journal_mode");
    return statement->Text(0);
  };
  if (journal_mode() == "wal") return;
  ExecWithBusyRetry(connection, "PRAGMA journal_mode = WAL");
  const std::string mode = journal_mode();
  // An in-memory database reports "memory" and cannot use WAL; that is fine for it.
  if (mode != "wal" && mode != "memory") {
    throw StoreError(connection.path() + ": cannot switch the database to WAL (journal mode is " +
                     mode + "); is it on a file system without shared memory support?");
  }
}

// Inserts `run`, or rewrites every column of the stored row with its id; the caller holds the
// write transaction.
void WriteRun(Connection& connection, const RunRow& run) {
  CachedStatement statement = connection.Prepare(
      std::string("INSERT INTO runs (") + kRunColumns +
      ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
      "?18, ?19, ?20) ON CONFLICT (id) DO UPDATE SET "
      "sweep_id = excluded.sweep_id, method = excluded.method, size = excluded.size, "
      "seed = excluded.seed, spec_json = excluded.spec_json, status = excluded.status, "
      "started_at = excluded.started_at, ended_at = excluded.ended_at, "
      "exit_code = excluded.exit_code, error = excluded.error, host = excluded.host, "
      "device = excluded.device, world_size = excluded.world_size, "
      "threads = excluded.threads, libs = excluded.libs, "
      "params_total = excluded.params_total, params_active = excluded.params_active, "
      "heartbeat_at = excluded.heartbeat_at, pid = excluded.pid");
  BindRunIdentity(*statement, run);
  statement->BindTextOrNull(8, run.started_at);
  statement->BindTextOrNull(9, run.ended_at);
  if (run.exit_code.has_value()) {
    statement->BindInt64(10, *run.exit_code);
  } else {
    statement->BindNull(10);
  }
  statement->BindTextOrNull(11, run.error);
  statement->BindText(12, run.host);
  statement->BindText(13, run.device);
  statement->BindInt64(14, run.world_size);
  statement->BindInt64(15, run.threads);
  statement->BindText(16, run.libs);
  statement->BindInt64(17, run.params_total);
  statement->BindInt64(18, run.params_active);
  statement->BindTextOrNull(19, run.heartbeat_at);
  if (run.pid != 0) {
    statement->BindInt64(20, run.pid);
  } else {
    statement->BindNull(20);
  }
  statement->Run();
}

}  // namespace

void BindRunIdentity(Statement& statement, const RunRow& run) {
  statement.BindText(1, run.id);
  statement.BindTextOrNull(2, run.sweep_id);
  statement.BindText(3, run.method);
  statement.BindText(4, run.size);
  statement.BindInt64(5, run.seed);
  statement.BindText(6, run.spec_json);
  statement.BindText(7, RunStatusName(run.status));
}

// ---- RunStatus ------------------------------------------------------------------------------

std::string SqliteVersion() { return sqlite3_libversion(); }

const char* RunStatusName(RunStatus status) {
  for (const RunStatusEntry& entry : kRunStatusNames) {
    if (entry.status == status) return entry.name;
  }
  return "unknown";
}

RunStatus ParseRunStatus(const std::string& name) {
  std::string valid;
  for (const RunStatusEntry& entry : kRunStatusNames) {
    if (name == entry.name) return entry.status;
    valid += valid.empty() ? "" : ", ";
    valid += entry.name;
  }
  throw StoreError("unknown run status '" + name + "' (expected one of " + valid + ")");
}

bool IsTerminal(RunStatus status) {
  return status == RunStatus::kFinished || status == RunStatus::kFailed ||
         status == RunStatus::kKilled;
}

// ---- Impl -----------------------------------------------------------------------------------

Connection& Store::Impl::Writer(const std::string& operation) {
  if (mode == Store::Mode::kReadOnly) {
    throw StoreError(path + ": " + operation + ": the store is opened read-only");
  }
  return *connection;
}

Connection& Store::Impl::QueryConnection() {
  if (mode == Store::Mode::kReadOnly) return *connection;
  if (query_connection == nullptr) {
    query_connection = std::make_unique<Connection>(path, SQLITE_OPEN_READONLY);
  }
  return *query_connection;
}

// ---- open -----------------------------------------------------------------------------------

Store::Store(const std::string& path, Mode mode) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->mode = mode;
  if (path.empty()) throw StoreError("results store: the database path is empty");
  const std::vector<MigrationStep>& steps = SchemaMigrations();
  if (steps.empty() || steps.back().to_version != kSchemaVersion) {
    throw StoreError(path + ": internal error: the last migration step does not reach version " +
                     std::to_string(kSchemaVersion));
  }

  if (mode == Mode::kReadOnly) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error)) {
      throw StoreError(path + ": no such database file (a read-only open needs an existing one)");
    }
    impl_->connection = OpenReadOnly(path);
    const int version = ReadSchemaVersion(*impl_->connection);
    if (version > kSchemaVersion) {
      throw StoreError(path + ": the database has schema version " + std::to_string(version) +
                       ", newer than version " + std::to_string(kSchemaVersion) +
                       " that this build of moebench knows; open it with a newer moebench");
    }
    if (version < kSchemaVersion) {
      throw StoreError(path + ": the database has schema version " + std::to_string(version) +
                       ", older than version " + std::to_string(kSchemaVersion) +
                       " that this build reads; open it read-write once to migrate it");
    }
    return;
  }

  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
      throw StoreError(path + ": cannot create the directory " + parent.string() + ": " +
                       error.message());
    }
  }
  impl_->connection =
      std::make_unique<Connection>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  EnableWal(*impl_->connection);
  // With WAL, NORMAL syncs at checkpoints only: a power cut may lose the last commits but
  // never corrupts the file, and a commit costs no fsync.
  impl_->connection->Exec("PRAGMA synchronous = NORMAL");
  MigrateSchema(*impl_->connection, steps);
}

Store::~Store() = default;
Store::Store(Store&& other) noexcept = default;
Store& Store::operator=(Store&& other) noexcept = default;

int Store::SchemaVersion() const { return ReadSchemaVersion(impl_->Reader()); }

const std::string& Store::path() const { return impl_->path; }

Store::Mode Store::mode() const { return impl_->mode; }

// ---- sweeps ---------------------------------------------------------------------------------

void Store::UpsertSweep(const SweepRow& sweep) {
  Connection& connection = impl_->Writer("upsert sweep");
  RequireNonEmpty(impl_->path, "upsert sweep", "id", sweep.id);
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "INSERT INTO sweeps (id, name, manifest, manifest_hash, created_at, git_commit, dirty) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET "
      "name = excluded.name, manifest = excluded.manifest, "
      "manifest_hash = excluded.manifest_hash, created_at = excluded.created_at, "
      "git_commit = excluded.git_commit, dirty = excluded.dirty");
  statement->BindText(1, sweep.id);
  statement->BindText(2, sweep.name);
  statement->BindText(3, sweep.manifest);
  statement->BindText(4, sweep.manifest_hash);
  statement->BindText(5, sweep.created_at);
  statement->BindText(6, sweep.git_commit);
  statement->BindInt64(7, sweep.dirty ? 1 : 0);
  statement->Run();
  transaction.Commit();
}

std::optional<SweepRow> Store::GetSweep(const std::string& id_or_name) const {
  Connection& connection = impl_->Reader();
  {
    CachedStatement by_id =
        connection.Prepare(std::string("SELECT ") + kSweepColumns + " FROM sweeps WHERE id = ?1");
    by_id->BindText(1, id_or_name);
    if (by_id->Step()) return ReadSweep(*by_id);
  }
  CachedStatement by_name =
      connection.Prepare(std::string("SELECT ") + kSweepColumns +
                         " FROM sweeps WHERE name = ?1 ORDER BY created_at DESC, rowid DESC "
                         "LIMIT 1");
  by_name->BindText(1, id_or_name);
  if (by_name->Step()) return ReadSweep(*by_name);
  return std::nullopt;
}

std::vector<SweepRow> Store::ListSweeps() const {
  CachedStatement statement = impl_->Reader().Prepare(std::string("SELECT ") + kSweepColumns +
                                                      " FROM sweeps ORDER BY created_at, rowid");
  std::vector<SweepRow> sweeps;
  while (statement->Step()) sweeps.push_back(ReadSweep(*statement));
  return sweeps;
}

// ---- runs -----------------------------------------------------------------------------------

void Store::UpsertRun(const RunRow& run) {
  Connection& connection = impl_->Writer("upsert run");
  RequireNonEmpty(impl_->path, "upsert run", "id", run.id);
  Transaction transaction(connection);
  WriteRun(connection, run);
  transaction.Commit();
}

void Store::SetRunStatus(const std::string& run_id, RunStatus status, const std::string& error,
                         std::optional<int> exit_code) {
  const std::string operation = std::string("set run status to ") + RunStatusName(status);
  Connection& connection = impl_->Writer(operation);
  std::string sql;
  if (status == RunStatus::kRunning) {
    sql =
        "UPDATE runs SET status = ?2, error = ?3, exit_code = ?4, started_at = ?5, "
        "heartbeat_at = ?5, ended_at = NULL WHERE id = ?1";
  } else if (IsTerminal(status)) {
    sql = "UPDATE runs SET status = ?2, error = ?3, exit_code = ?4, ended_at = ?5 WHERE id = ?1";
  } else {
    sql = "UPDATE runs SET status = ?2, error = ?3, exit_code = ?4 WHERE id = ?1";
  }
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(sql);
  statement->BindText(1, run_id);
  statement->BindText(2, RunStatusName(status));
  statement->BindTextOrNull(3, error);
  if (exit_code.has_value()) {
    statement->BindInt64(4, *exit_code);
  } else {
    statement->BindNull(4);
  }
  if (status != RunStatus::kPending) statement->BindText(5, NowIso8601());
  statement->Run();
  if (connection.Changes() == 0) {
    throw StoreError(impl_->path + ": " + operation + ": no run with id '" + run_id + "'");
  }
  transaction.Commit();
}

void Store::Heartbeat(const std::string& run_id, int64_t pid) {
  Connection& connection = impl_->Writer("heartbeat");
  Transaction transaction(connection);
  CachedStatement statement =
      connection.Prepare("UPDATE runs SET heartbeat_at = ?2, pid = ?3 WHERE id = ?1");
  statement->BindText(1, run_id);
  statement->BindText(2, NowIso8601());
  statement->BindInt64(3, pid);
  statement->Run();
  if (connection.Changes() == 0) {
    throw StoreError(impl_->path + ": heartbeat: no run with id '" + run_id + "'");
  }
  transaction.Commit();
}

std::optional<RunRow> Store::FindRun(const std::string& id_prefix) const {
  if (id_prefix.empty()) throw StoreError(impl_->path + ": find run: the run id is empty");
  Connection& connection = impl_->Reader();
  {
    CachedStatement exact =
        connection.Prepare(std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1");
    exact->BindText(1, id_prefix);
    if (exact->Step()) return ReadRun(*exact);
  }
  // substr() rather than LIKE: an id prefix may contain '%' or '_' literally.
  CachedStatement by_prefix =
      connection.Prepare(std::string("SELECT ") + kRunColumns +
                         " FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT ?2");
  by_prefix->BindText(1, id_prefix);
  by_prefix->BindInt64(2, kMaxAmbiguousCandidates + 1);
  std::vector<RunRow> matches;
  while (by_prefix->Step()) matches.push_back(ReadRun(*by_prefix));
  if (matches.empty()) return std::nullopt;
  if (matches.size() == 1) return matches[0];
  std::string candidates;
  for (size_t i = 0; i < matches.size() && i < kMaxAmbiguousCandidates; i++) {
    candidates += (i == 0 ? "" : ", ") + matches[i].id;
  }
  if (matches.size() > kMaxAmbiguousCandidates) candidates += ", ...";
  throw StoreError(impl_->path + ": run id prefix '" + id_prefix + "' is ambiguous; it matches " +
                   candidates);
}

std::vector<RunRow> Store::ListRuns(const std::string& sweep_id, const std::string& status) const {
  if (!status.empty()) ParseRunStatus(status);
  // "?1 = ''" keeps one statement for every combination of filters.
  CachedStatement statement = impl_->Reader().Prepare(
      std::string("SELECT ") + kRunColumns +
      " FROM runs WHERE (?1 = '' OR sweep_id = ?1) AND (?2 = '' OR status = ?2) ORDER BY rowid");
  statement->BindText(1, sweep_id);
  statement->BindText(2, status);
  std::vector<RunRow> runs;
  while (statement->Step()) runs.push_back(ReadRun(*statement));
  return runs;
}

// ---- one writer's run record ----------------------------------------------------------------

std::string Store::DatabaseId() const {
  CachedStatement statement = impl_->Reader().Prepare("SELECT value FROM meta WHERE key = 'db_id'");
  if (!statement->Step()) throw StoreError(impl_->path + ": the database has no id (meta.db_id)");
  return statement->Text(0);
}

Store::WriterClaim Store::ClaimRunForWriter(const RunRow& run,
                                            const std::function<std::string(const RunRow&)>& busy) {
  Connection& connection = impl_->Writer("claim run");
  RequireNonEmpty(impl_->path, "claim run", "id", run.id);
  Transaction transaction(connection);
  WriterClaim claim;
  {
    CachedStatement stored =
        connection.Prepare(std::string("SELECT ") + kRunColumns + " FROM runs WHERE id = ?1");
    stored->BindText(1, run.id);
    if (stored->Step()) claim.before = ReadRun(*stored);
  }
  if (claim.before && claim.before->status == RunStatus::kFinished) {
    claim.outcome = ClaimOutcome::kFinished;
    return claim;  // the transaction rolls back: nothing was written
  }
  if (claim.before) claim.busy = busy(*claim.before);
  if (!claim.busy.empty()) {
    claim.outcome = ClaimOutcome::kBusy;
    return claim;
  }
  RunRow mine = run;
  // A run shared by several sweeps keeps the sweep it was first recorded under.
  if (mine.sweep_id.empty() && claim.before) mine.sweep_id = claim.before->sweep_id;
  mine.status = RunStatus::kRunning;
  mine.started_at = mine.heartbeat_at = NowIso8601();
  mine.ended_at.clear();
  mine.error.clear();
  mine.exit_code.reset();
  WriteRun(connection, mine);
  transaction.Commit();
  claim.outcome = ClaimOutcome::kClaimed;
  claim.row = mine;
  return claim;
}

void Store::FinishRun(const std::string& run_id, const FinishCheck& check) {
  Connection& connection = impl_->Writer("finish run");
  Transaction transaction(connection);
  std::vector<std::string> missing;
  const std::string at_step = " at step " + std::to_string(check.final_step);
  for (const std::string& key : check.metric_keys) {
    CachedStatement q = connection.Prepare(
        "SELECT 1 FROM metrics WHERE run_id = ?1 AND key = ?2 AND step = ?3 LIMIT 1");
    q->BindText(1, run_id);
    q->BindText(2, key);
    q->BindInt64(3, check.final_step);
    if (!q->Step()) missing.push_back("metric " + key + at_step);
  }
  for (const std::string& split : check.eval_splits) {
    CachedStatement q = connection.Prepare(
        "SELECT 1 FROM evals WHERE run_id = ?1 AND split = ?2 AND step = ?3 LIMIT 1");
    q->BindText(1, run_id);
    q->BindText(2, split);
    q->BindInt64(3, check.final_step);
    if (!q->Step()) missing.push_back(split + " evaluation" + at_step);
  }
  if (check.comm_rows) {
    CachedStatement q = connection.Prepare("SELECT 1 FROM comm WHERE run_id = ?1 LIMIT 1");
    q->BindText(1, run_id);
    if (!q->Step()) missing.emplace_back("communication rows");
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw StoreError(impl_->path + ": run " + run_id +
                     " is not recorded finished: its results are incomplete (missing " + list +
                     ")");
  }
  CachedStatement statement = connection.Prepare(
      "UPDATE runs SET status = 'finished', error = NULL, exit_code = 0, ended_at = ?2 "
      "WHERE id = ?1");
  statement->BindText(1, run_id);
  statement->BindText(2, NowIso8601());
  statement->Run();
  if (connection.Changes() == 0) {
    throw StoreError(impl_->path + ": finish run: no run with id '" + run_id + "'");
  }
  transaction.Commit();
}

}  // namespace moebench
