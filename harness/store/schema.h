// The results database schema and its forward migrations. The schema version lives in
// `PRAGMA user_version`: 0 is an empty file, step i brings version i to i + 1. A released
// step is never edited; a change to the schema is a new step appended to the list.
#pragma once

#include <string>
#include <vector>

#include "harness/store/sqlite_util.h"

namespace moebench {

struct MigrationStep {
  int to_version = 0;
  std::string description;
  std::string sql;  // one or more statements
};

// The migrations of this build, in order; the last one's to_version is Store::kSchemaVersion.
const std::vector<MigrationStep>& SchemaMigrations();

// The file's `PRAGMA user_version`.
int ReadSchemaVersion(Connection& connection);

// Applies the steps the file has not seen yet, all in one write transaction (so a failing step
// leaves the file as it was, and two processes opening a new file do not both migrate it).
// Throws StoreError naming both versions when the file is newer than the last step.
// Returns the version the file had before.
int MigrateSchema(Connection& connection, const std::vector<MigrationStep>& steps);

}  // namespace moebench
