// A small RAII layer over the SQLite C API: a connection, a prepared statement, a write
// transaction that retries BEGIN IMMEDIATE while another process holds the write lock.
// Every failure is a StoreError naming the database path, the SQLite message and the SQL.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/store/store_error.h"

namespace moebench {

// How long one connection waits for another's lock before giving up.
constexpr int kBusyTimeoutMs = 10000;

// "<path>: <what>: <sqlite message> [sql: <sql>]"; the sql part only when sql is not empty.
std::string SqliteErrorMessage(sqlite3* db, const std::string& path, const std::string& what,
                               const std::string& sql);

class Statement {
 public:
  // Prepares one statement; throws StoreError when it does not compile.
  Statement(sqlite3* db, const std::string& path, const std::string& sql);
  // Takes ownership of an already prepared statement.
  Statement(sqlite3* db, const std::string& path, sqlite3_stmt* stmt);
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Rewinds the statement and clears its bindings, ready for the next row.
  void Reset();

  // Parameters are 1-based, as in SQLite.
  void BindText(int index, const std::string& value);
  void BindTextOrNull(int index, const std::string& value);  // "" -> NULL
  void BindInt64(int index, int64_t value);
  void BindDouble(int index, double value);  // NaN is stored as NULL (SQLite's rule)
  void BindNull(int index);
  void BindOptionalInt64(int index, std::optional<int64_t> value);
  void BindOptionalDouble(int index, std::optional<double> value);

  // Steps once: true when a row is available, false when the statement is done.
  bool Step();
  // Steps to completion, discarding rows: for INSERT/UPDATE/DELETE.
  void Run();

  int ColumnCount() const;
  std::string ColumnName(int column) const;
  // Columns are 0-based, as in SQLite.
  bool IsNull(int column) const;
  int64_t Int64(int column) const;     // NULL -> 0
  double Double(int column) const;     // NULL -> NaN (a NaN written is read back as NaN)
  std::string Text(int column) const;  // NULL -> ""
  std::optional<int64_t> OptionalInt64(int column) const;
  std::optional<double> OptionalDouble(int column) const;
  std::optional<std::string> OptionalText(int column) const;

  // True when the statement makes no direct change to the database file.
  bool ReadOnly() const;
  // The statement's own text (for a statement cut from a longer script, just its part).
  std::string Sql() const;

 private:
  [[noreturn]] void Fail(const std::string& what) const;
  void CheckBind(int rc, int index);

  sqlite3* db_ = nullptr;
  std::string path_;
  sqlite3_stmt* stmt_ = nullptr;
};

// A use of a statement from a connection's cache; resets it when the use ends, so that a
// partly stepped SELECT never keeps a read snapshot open (which would hide other processes'
// writes from this connection and stop WAL checkpoints).
class CachedStatement {
 public:
  explicit CachedStatement(Statement* statement) : statement_(statement) {}
  ~CachedStatement() {
    if (statement_ != nullptr) statement_->Reset();
  }
  CachedStatement(CachedStatement&& other) noexcept : statement_(other.statement_) {
    other.statement_ = nullptr;
  }
  CachedStatement(const CachedStatement&) = delete;
  CachedStatement& operator=(const CachedStatement&) = delete;
  CachedStatement& operator=(CachedStatement&&) = delete;
  Statement* operator->() const { return statement_; }
  Statement& operator*() const { return *statement_; }

 private:
  Statement* statement_;
};

class Connection {
 public:
  // flags: SQLITE_OPEN_* (READONLY, or READWRITE|CREATE). Sets the busy timeout.
  Connection(const std::string& path, int flags);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  // The path that messages name (an immutable open is by URI; messages name the file).
  void set_display_path(const std::string& path) { path_ = path; }

  // Runs one or more statements that return no rows we need (DDL, pragmas).
  void Exec(const std::string& sql);
  // The cached prepared statement for `sql`, reset and with no bindings; prepared on first
  // use. Do not hold two uses of the same SQL at once.
  CachedStatement Prepare(const std::string& sql);
  // Compiles every statement in `sql` (separated by ';'), in order; skips empty ones.
  std::vector<Statement> PrepareAll(const std::string& sql);
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;
  // Whether the connection is outside any explicit transaction.
  bool AutoCommit() const;

  [[noreturn]] void Fail(const std::string& what, const std::string& sql) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
  bool read_only_ = false;
  std::map<std::string, Statement> cache_;
};

// A read-only connection to the database file at `path`. See Note [Read-only opens].
std::unique_ptr<Connection> OpenReadOnly(const std::string& path);

// Runs `sql` (BEGIN IMMEDIATE, COMMIT, a pragma), retrying while SQLite answers SQLITE_BUSY
// or SQLITE_LOCKED, for up to kBusyTimeoutMs. See Note [Busy retries].
void ExecWithBusyRetry(Connection& connection, const std::string& sql);

// A write transaction: BEGIN IMMEDIATE now, ROLLBACK on destruction unless Commit() ran.
// Taking the write lock at BEGIN (not at the first write) means a transaction never has to
// upgrade a read snapshot to a write lock, which SQLite cannot wait for in WAL mode.
class Transaction {
 public:
  explicit Transaction(Connection& connection);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void Commit();

 private:
  Connection& connection_;
  bool open_ = false;
};

}  // namespace moebench
