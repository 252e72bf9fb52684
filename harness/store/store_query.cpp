// Free SQL for `moebench query`: read-only by construction (a SQLITE_OPEN_READONLY
// connection) and by inspection (sqlite3_stmt_readonly on every statement before any runs).
#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/store/store_impl.h"

namespace moebench {
namespace {

std::string Trim(const std::string& text) {
  const char* const kSpace = " \t\r\n";
  const size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string::npos) return std::string();
  const size_t end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

}  // namespace

QueryResult Store::Query(const std::string& sql) const {
  Connection& connection = impl_->QueryConnection();
  std::vector<Statement> statements = connection.PrepareAll(sql);
  if (statements.empty()) {
    throw StoreError(impl_->path + ": query: no SQL statement in '" + sql + "'");
  }
  for (const Statement& statement : statements) {
    if (!statement.ReadOnly()) {
      throw StoreError(
          "query: the database is opened read-only; refusing a statement that writes: " +
          Trim(statement.Sql()));
    }
  }
  QueryResult result;
  try {
    for (Statement& statement : statements) {
      const int columns = statement.ColumnCount();
      if (columns == 0) {
        statement.Run();
        continue;
      }
      // The result is that of the last statement with columns.
      result = QueryResult();
      for (int column = 0; column < columns; column++) {
        result.columns.push_back(statement.ColumnName(column));
      }
      while (statement.Step()) {
        std::vector<std::optional<std::string>> row;
        row.reserve(columns);
        for (int column = 0; column < columns; column++) {
          row.push_back(statement.OptionalText(column));
        }
        result.rows.push_back(std::move(row));
      }
    }
  } catch (...) {
    statements.clear();
    if (!connection.AutoCommit()) connection.Exec("ROLLBACK");
    throw;
  }
  // A "BEGIN" with no "COMMIT" would pin this connection to an old snapshot for the rest of
  // its life; end whatever transaction the user's SQL left open.
  statements.clear();
  if (!connection.AutoCommit()) connection.Exec("ROLLBACK");
  return result;
}

}  // namespace moebench
