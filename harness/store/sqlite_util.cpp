#include "harness/store/sqlite_util.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <thread>
#include <utility>

namespace moebench {
namespace {

// Longest pause between two retries of a busy BEGIN/COMMIT.
constexpr int kMaxRetrySleepMs = 50;

bool IsBusy(int rc) {
  const int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

}  // namespace

std::string SqliteErrorMessage(sqlite3* db, const std::string& path, const std::string& what,
                               const std::string& sql) {
  std::string message = path + ": " + what;
  if (db != nullptr) message += ": " + std::string(sqlite3_errmsg(db));
  if (!sql.empty()) message += " [sql: " + sql + "]";
  return message;
}

// ---- Statement ------------------------------------------------------------------------------

Statement::Statement(sqlite3* db, const std::string& path, const std::string& sql)
    : db_(db), path_(path) {
  const int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    throw StoreError(SqliteErrorMessage(db, path, "cannot prepare statement", sql));
  }
  if (stmt_ == nullptr) {
    throw StoreError(path + ": no SQL statement in [sql: " + sql + "]");
  }
}

Statement::Statement(sqlite3* db, const std::string& path, sqlite3_stmt* stmt)
    : db_(db), path_(path), stmt_(stmt) {}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), path_(std::move(other.path_)), stmt_(other.stmt_) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    stmt_ = other.stmt_;
    other.stmt_ = nullptr;
  }
  return *this;
}

void Statement::Fail(const std::string& what) const {
  throw StoreError(SqliteErrorMessage(db_, path_, what, Sql()));
}

void Statement::Reset() {
  // sqlite3_reset repeats the error of the last step; that error was already reported.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Statement::CheckBind(int rc, int index) {
  if (rc != SQLITE_OK) Fail("cannot bind parameter " + std::to_string(index));
}

void Statement::BindText(int index, const std::string& value) {
  CheckBind(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                              SQLITE_TRANSIENT),
            index);
}

void Statement::BindTextOrNull(int index, const std::string& value) {
  if (value.empty()) {
    BindNull(index);
  } else {
    BindText(index, value);
  }
}

void Statement::BindInt64(int index, int64_t value) {
  CheckBind(sqlite3_bind_int64(stmt_, index, value), index);
}

void Statement::BindDouble(int index, double value) {
  CheckBind(sqlite3_bind_double(stmt_, index, value), index);
}

void Statement::BindNull(int index) { CheckBind(sqlite3_bind_null(stmt_, index), index); }

void Statement::BindOptionalInt64(int index, std::optional<int64_t> value) {
  if (value.has_value()) {
    BindInt64(index, *value);
  } else {
    BindNull(index);
  }
}

void Statement::BindOptionalDouble(int index, std::optional<double> value) {
  if (value.has_value()) {
    BindDouble(index, *value);
  } else {
    BindNull(index);
  }
}

bool Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Fail("statement failed");
}

void Statement::Run() {
  while (Step()) {
  }
}

int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

std::string Statement::ColumnName(int column) const {
  const char* name = sqlite3_column_name(stmt_, column);
  return name == nullptr ? std::string() : std::string(name);
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

int64_t Statement::Int64(int column) const { return sqlite3_column_int64(stmt_, column); }

double Statement::Double(int column) const {
  if (IsNull(column)) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(stmt_, column);
}

std::string Statement::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  const int size = sqlite3_column_bytes(stmt_, column);
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::optional<int64_t> Statement::OptionalInt64(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int64(column);
}

std::optional<double> Statement::OptionalDouble(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Double(column);
}

std::optional<std::string> Statement::OptionalText(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Text(column);
}

bool Statement::ReadOnly() const { return sqlite3_stmt_readonly(stmt_) != 0; }

std::string Statement::Sql() const {
  const char* sql = stmt_ == nullptr ? nullptr : sqlite3_sql(stmt_);
  return sql == nullptr ? std::string() : std::string(sql);
}

// ---- Connection -----------------------------------------------------------------------------

Connection::Connection(const std::string& path, int flags)
    : path_(path), read_only_((flags & SQLITE_OPEN_READONLY) != 0) {
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = SqliteErrorMessage(db_, path, "cannot open database", "");
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw StoreError(message);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
}

Connection::~Connection() {
  // Statements must be finalized before the connection closes.
  cache_.clear();
  sqlite3_close_v2(db_);
}

void Connection::Fail(const std::string& what, const std::string& sql) const {
  throw StoreError(SqliteErrorMessage(db_, path_, what, sql));
}

void Connection::Exec(const std::string& sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    const std::string message = error == nullptr ? sqlite3_errstr(rc) : error;
    sqlite3_free(error);
    throw StoreError(path_ + ": statement failed: " + message + " [sql: " + sql + "]");
  }
}

CachedStatement Connection::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    it = cache_.emplace(sql, Statement(db_, path_, sql)).first;
  } else {
    it->second.Reset();
  }
  return CachedStatement(&it->second);
}

std::vector<Statement> Connection::PrepareAll(const std::string& sql) {
  std::vector<Statement> statements;
  const char* tail = sql.c_str();
  const char* end = tail + sql.size();
  while (tail < end) {
    sqlite3_stmt* stmt = nullptr;
    const char* next = nullptr;
    const int rc = sqlite3_prepare_v2(db_, tail, static_cast<int>(end - tail), &stmt, &next);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      Fail("cannot prepare statement", sql);
    }
    if (stmt != nullptr) statements.emplace_back(db_, path_, stmt);
    if (next == nullptr || next == tail) break;
    tail = next;
  }
  return statements;
}

int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

bool Connection::AutoCommit() const { return sqlite3_get_autocommit(db_) != 0; }

// Note [Busy retries]
// The busy timeout makes SQLite wait for a lock inside most calls, but not all: SQLite returns
// SQLITE_BUSY at once where waiting could deadlock (e.g. while another connection recovers
// the WAL, or when two connections both hold read snapshots and want the write lock), and
// changing the journal mode needs an exclusive lock. Those calls are retried here with a
// short growing pause, for the same total time the busy timeout would wait.
void ExecWithBusyRetry(Connection& connection, const std::string& sql) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  int sleep_ms = 1;
  while (true) {
    const int rc = sqlite3_exec(connection.handle(), sql.c_str(), nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return;
    if (!IsBusy(rc) || std::chrono::steady_clock::now() >= deadline) {
      connection.Fail("statement failed", sql);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    sleep_ms = sleep_ms * 2 > kMaxRetrySleepMs ? kMaxRetrySleepMs : sleep_ms * 2;
  }
}

// Note [Read-only opens]
// A SQLITE_OPEN_READONLY connection to a WAL database still creates the -wal and -shm files
// beside it when they are missing, so in a folder the user cannot write (a shared results
// folder, a read-only mount) the open fails. There, when no -wal file exists, no process has
// the database open for writing (a writer would have had to create it in this folder), and
// the file is opened immutable: SQLite reads it without locks and without side files. When a
// -wal file exists, SQLite can read it read-only as long as the -shm file exists too.
std::unique_ptr<Connection> OpenReadOnly(const std::string& path) {
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (folder.empty()) folder = ".";
  std::error_code error;
  const bool has_wal = std::filesystem::exists(path + "-wal", error);
  if (access(folder.c_str(), W_OK) == 0 || has_wal) {
    return std::make_unique<Connection>(path, SQLITE_OPEN_READONLY);
  }
  std::string uri = "file:";
  const std::string absolute = std::filesystem::absolute(path, error).string();
  for (char c : error ? path : absolute) {
    if (c == '%' || c == '?' || c == '#') {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", static_cast<unsigned char>(c));
      uri += hex;
    } else {
      uri += c;
    }
  }
  uri += "?immutable=1";
  auto connection = std::make_unique<Connection>(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
  connection->set_display_path(path);
  return connection;
}

// ---- Transaction ----------------------------------------------------------------------------

Transaction::Transaction(Connection& connection) : connection_(connection) {
  ExecWithBusyRetry(connection_, "BEGIN IMMEDIATE");
  open_ = true;
}

Transaction::~Transaction() {
  if (open_) sqlite3_exec(connection_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::Commit() {
  ExecWithBusyRetry(connection_, "COMMIT");
  open_ = false;
}

}  // namespace moebench
