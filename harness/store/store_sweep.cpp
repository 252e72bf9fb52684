// What the sweep runner and `moebench collect` need from the store beyond a single run's
// writes: claiming a run atomically, putting an abandoned one back, parameterised read-only
// queries (`runs --where`), and merging per-run databases.
#include <filesystem>
#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/store/store_impl.h"
#include "harness/util/time.h"

namespace moebench {
namespace {

// finished > failed/killed > running > pending: how far along a copy of a run is.
int Progress(const std::string& status) {
  if (status == "finished") return 3;
  if (status == "failed" || status == "killed") return 2;
  if (status == "running") return 1;
  return 0;
}

// "name" as an SQL identifier.
std::string QuoteIdentifier(const std::string& name) {
  std::string q = "\"";
  for (char c : name) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

bool Store::InsertRunIfAbsent(const RunRow& run) {
  Connection& connection = impl_->Writer("insert run");
  if (run.id.empty()) throw StoreError(impl_->path + ": insert run: id is empty");
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "INSERT INTO runs (id, sweep_id, method, size, seed, spec_json, status) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING");
  BindRunIdentity(*statement, run);
  statement->Run();
  const bool inserted = connection.Changes() > 0;
  transaction.Commit();
  return inserted;
}

void Store::SetRunSweep(const std::string& run_id, const std::string& sweep_id) {
  Connection& connection = impl_->Writer("set run sweep");
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare("UPDATE runs SET sweep_id = ?2 WHERE id = ?1");
  statement->BindText(1, run_id);
  statement->BindTextOrNull(2, sweep_id);
  statement->Run();
  if (connection.Changes() == 0) {
    throw StoreError(impl_->path + ": set run sweep: no run with id '" + run_id + "'");
  }
  transaction.Commit();
}

bool Store::ClaimRun(const std::string& run_id, int64_t pid, const std::string& host) {
  Connection& connection = impl_->Writer("claim run");
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "UPDATE runs SET status = 'running', pid = ?2, host = ?3, started_at = ?4, "
      "heartbeat_at = ?4, ended_at = NULL, exit_code = NULL, error = NULL "
      "WHERE id = ?1 AND status = 'pending'");
  statement->BindText(1, run_id);
  statement->BindInt64(2, pid);
  statement->BindText(3, host);
  statement->BindText(4, NowIso8601());
  statement->Run();
  const bool claimed = connection.Changes() > 0;
  transaction.Commit();
  return claimed;
}

bool Store::RequeueRun(const std::string& run_id, int64_t pid, const std::string& reason) {
  Connection& connection = impl_->Writer("requeue run");
  Transaction transaction(connection);
  CachedStatement statement = connection.Prepare(
      "UPDATE runs SET status = 'pending', error = ?3, pid = NULL "
      "WHERE id = ?1 AND status = 'running' AND (?2 = 0 OR pid = ?2)");
  statement->BindText(1, run_id);
  statement->BindInt64(2, pid);
  statement->BindTextOrNull(3, reason);
  statement->Run();
  const bool changed = connection.Changes() > 0;
  transaction.Commit();
  return changed;
}

QueryResult Store::QueryWithParams(const std::string& sql,
                                   const std::vector<SqlParam>& params) const {
  Connection& connection = impl_->QueryConnection();
  Statement statement(connection.handle(), impl_->path, sql);
  if (!statement.ReadOnly()) {
    throw StoreError("query: refusing a statement that writes: " + sql);
  }
  for (size_t i = 0; i < params.size(); i++) {
    const int index = static_cast<int>(i) + 1;
    if (const auto* s = std::get_if<std::string>(&params[i])) {
      statement.BindText(index, *s);
    } else if (const auto* n = std::get_if<int64_t>(&params[i])) {
      statement.BindInt64(index, *n);
    } else {
      statement.BindDouble(index, std::get<double>(params[i]));
    }
  }
  QueryResult result;
  const int columns = statement.ColumnCount();
  for (int column = 0; column < columns; column++) {
    result.columns.push_back(statement.ColumnName(column));
  }
  while (statement.Step()) {
    std::vector<std::optional<std::string>> row;
    row.reserve(columns);
    for (int column = 0; column < columns; column++) row.push_back(statement.OptionalText(column));
    result.rows.push_back(std::move(row));
  }
  return result;
}

Store::MergeStats Store::MergeFrom(const std::string& path) {
  Connection& connection = impl_->Writer("merge");
  {
    // Checks the file exists and has this build's schema version.
    Store other(path, Mode::kReadOnly);
  }
  sqlite3* db = connection.handle();
  {
    Statement attach(db, impl_->path, "ATTACH DATABASE ?1 AS merge_src");
    attach.BindText(1, path);
    attach.Run();
  }
  MergeStats stats;
  try {
    Transaction transaction(connection);
    struct Candidate {
      std::string id, sweep_id, status, when;
    };
    // The per-run tables: every table with a run_id column (metrics, evals, comm, ...), read
    // from the schema so that a table added later is merged too.
    std::vector<std::string> run_tables;
    {
      Statement tables(db, impl_->path,
                       "SELECT m.name FROM merge_src.sqlite_master m WHERE m.type = 'table' "
                       "AND m.name NOT IN ('runs', 'sweeps') AND EXISTS (SELECT 1 FROM "
                       "pragma_table_info(m.name, 'merge_src') c WHERE c.name = 'run_id') "
                       "ORDER BY m.name");
      while (tables.Step()) run_tables.push_back(tables.Text(0));
    }
    std::vector<Candidate> candidates;
    {
      Statement runs(db, impl_->path,
                     "SELECT id, sweep_id, status, coalesce(ended_at, heartbeat_at, '') "
                     "FROM merge_src.runs ORDER BY rowid");
      while (runs.Step()) {
        candidates.push_back({runs.Text(0), runs.Text(1), runs.Text(2), runs.Text(3)});
      }
    }
    Statement here(db, impl_->path,
                   "SELECT sweep_id, status, coalesce(ended_at, heartbeat_at, '') FROM main.runs "
                   "WHERE id = ?1");
    for (const Candidate& c : candidates) {
      here.Reset();
      here.BindText(1, c.id);
      std::string kept_sweep;
      if (here.Step()) {
        kept_sweep = here.Text(0);
        const int mine = Progress(here.Text(1));
        const int theirs = Progress(c.status);
        if (theirs < mine || (theirs == mine && c.when <= here.Text(2))) {
          stats.runs_kept++;
          continue;
        }
      }
      here.Reset();
      for (const std::string& name : run_tables) {
        const std::string table = QuoteIdentifier(name);
        Statement del(db, impl_->path, "DELETE FROM main." + table + " WHERE run_id = ?1");
        del.BindText(1, c.id);
        del.Run();
        Statement copy(db, impl_->path,
                       "INSERT INTO main." + table + " SELECT * FROM merge_src." + table +
                           " WHERE run_id = ?1");
        copy.BindText(1, c.id);
        copy.Run();
      }
      Statement run(db, impl_->path,
                    "INSERT OR REPLACE INTO main.runs SELECT * FROM merge_src.runs WHERE id = ?1");
      run.BindText(1, c.id);
      run.Run();
      // A per-run database written by `train` alone has no sweep tag; keep the one here.
      if (c.sweep_id.empty() && !kept_sweep.empty()) {
        Statement tag(db, impl_->path, "UPDATE main.runs SET sweep_id = ?2 WHERE id = ?1");
        tag.BindText(1, c.id);
        tag.BindText(2, kept_sweep);
        tag.Run();
      }
      stats.runs_taken++;
    }
    Statement sweeps(db, impl_->path,
                     "INSERT OR IGNORE INTO main.sweeps SELECT * FROM merge_src.sweeps");
    sweeps.Run();
    stats.sweeps = static_cast<int>(connection.Changes());
    transaction.Commit();
  } catch (...) {
    connection.Exec("DETACH DATABASE merge_src");
    throw;
  }
  connection.Exec("DETACH DATABASE merge_src");
  return stats;
}

}  // namespace moebench
