// Private to harness/store: the state behind a Store, shared by store.cpp, store_logs.cpp and
// store_query.cpp.
#pragma once

#include <memory>
#include <string>

#include "harness/store/sqlite_util.h"
#include "harness/store/store.h"

namespace moebench {

struct Store::Impl {
  std::string path;
  Store::Mode mode = Store::Mode::kReadWrite;
  std::unique_ptr<Connection> connection;
  // Opened on the first Query(): a separate SQLITE_OPEN_READONLY connection, so that free SQL
  // cannot write even if a statement slipped past the read-only check.
  std::unique_ptr<Connection> query_connection;

  // The connection for a write; throws naming `operation` when the store is read-only.
  Connection& Writer(const std::string& operation);
  Connection& Reader() { return *connection; }
  Connection& QueryConnection();
};

// Binds a run's identity to parameters ?1..?7 of an INSERT into runs: id, sweep_id (NULL when
// empty), method, size, seed, spec_json, status.
void BindRunIdentity(Statement& statement, const RunRow& run);

}  // namespace moebench
