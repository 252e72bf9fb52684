#include "harness/store/schema.h"

namespace moebench {
namespace {

// Version 1. Conventions (the report scripts read these tables directly, so keep them stable):
// - timestamps are ISO-8601 UTC text with milliseconds (harness/util/time.h), NULL when unset;
// - JSON columns (spec_json, libs, decoding) hold canonical JSON text;
// - every per-run log table has a UNIQUE key that starts with run_id, which is also the index
//   the per-run reads use, and lets a resumed run rewrite a step instead of duplicating it;
// - no foreign keys: `moebench collect` merges databases whose rows arrive in any order.
const char* const kSchemaV1 = R"sql(
CREATE TABLE sweeps (
  id            TEXT PRIMARY KEY NOT NULL,
  name          TEXT NOT NULL,
  manifest      TEXT NOT NULL,
  manifest_hash TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  git_commit    TEXT NOT NULL,
  dirty         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sweeps_by_name ON sweeps(name, created_at);

CREATE TABLE runs (
  id            TEXT PRIMARY KEY NOT NULL,
  sweep_id      TEXT,
  method        TEXT NOT NULL,
  size          TEXT NOT NULL,
  seed          INTEGER NOT NULL,
  spec_json     TEXT NOT NULL,
  status        TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'finished', 'failed', 'killed')),
  started_at    TEXT,
  ended_at      TEXT,
  exit_code     INTEGER,
  error         TEXT,
  host          TEXT NOT NULL DEFAULT '',
  device        TEXT NOT NULL DEFAULT '',
  world_size    INTEGER NOT NULL DEFAULT 1,
  threads       INTEGER NOT NULL DEFAULT 0,
  libs          TEXT NOT NULL DEFAULT '{}',
  params_total  INTEGER NOT NULL DEFAULT 0,
  params_active INTEGER NOT NULL DEFAULT 0,
  heartbeat_at  TEXT,
  pid           INTEGER
);
CREATE INDEX runs_by_sweep ON runs(sweep_id);

-- value is NULL where a NaN was logged (SQLite stores NaN as NULL).
CREATE TABLE metrics (
  run_id TEXT NOT NULL,
  step   INTEGER NOT NULL,
  wall_s REAL NOT NULL,
  key    TEXT NOT NULL,
  value  REAL,
  UNIQUE (run_id, key, step)
);

CREATE TABLE latest_metrics (
  run_id TEXT NOT NULL,
  key    TEXT NOT NULL,
  step   INTEGER NOT NULL,
  wall_s REAL NOT NULL,
  value  REAL,
  PRIMARY KEY (run_id, key)
);

CREATE TABLE evals (
  run_id      TEXT NOT NULL,
  step        INTEGER NOT NULL,
  wall_s      REAL NOT NULL,
  split       TEXT NOT NULL,
  lang        TEXT NOT NULL,
  k           INTEGER NOT NULL,
  bleu        REAL,
  chrf        REAL,
  signature   TEXT NOT NULL,
  decoding    TEXT NOT NULL DEFAULT '{}',
  loss        REAL,
  n_sentences INTEGER NOT NULL,
  UNIQUE (run_id, step, split, lang, k)
);

CREATE TABLE comm (
  run_id           TEXT NOT NULL,
  step             INTEGER NOT NULL,
  layer            INTEGER NOT NULL,
  phase            TEXT NOT NULL,
  calls            INTEGER NOT NULL,
  bytes_local      INTEGER NOT NULL,
  bytes_intra_node INTEGER NOT NULL,
  bytes_inter_node INTEGER NOT NULL,
  wire_bytes       INTEGER NOT NULL,
  wire_intra_node  INTEGER NOT NULL,
  wire_inter_node  INTEGER NOT NULL,
  ms               REAL NOT NULL,
  UNIQUE (run_id, step, layer, phase)
);

CREATE TABLE expert_load (
  run_id  TEXT NOT NULL,
  step    INTEGER NOT NULL,
  layer   INTEGER NOT NULL,
  expert  INTEGER NOT NULL,
  tokens  INTEGER NOT NULL,
  dropped INTEGER NOT NULL,
  UNIQUE (run_id, step, layer, expert)
);
)sql";

// Version 2: per-sentence outputs of test decoding, for paired bootstrap between runs.
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE outputs (
  run_id TEXT NOT NULL,
  step   INTEGER NOT NULL,
  split  TEXT NOT NULL,
  lang   TEXT NOT NULL,
  k      INTEGER NOT NULL,
  idx    INTEGER NOT NULL,
  hyp    TEXT NOT NULL,
  ref    TEXT NOT NULL,
  UNIQUE (run_id, step, split, k, idx)
);
)sql";

// Version 3: the modeled communication time of each exchange (Note [Network model] in
// harness/comm/network_model.h), next to the measured `ms`. Rows written before it read 0.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE comm ADD COLUMN modeled_ms REAL NOT NULL DEFAULT 0;
)sql";

// Version 4: the database's identity, a random id drawn when the file is created (or first
// opened by a build that knows version 4). A checkpoint records it, so a run folder is reused
// only by the database whose run wrote it (Note [Checkpoint owner] in
// harness/train/checkpoint.h). `collect` does not copy it: a merged database is a new one.
constexpr const char* kSchemaV4 = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
)sql";

}  // namespace

const std::vector<MigrationStep>& SchemaMigrations() {
  static const std::vector<MigrationStep> steps = {
      {1, "create sweeps, runs, metrics, latest_metrics, evals, comm, expert_load", kSchemaV1},
      {2, "create outputs (per-sentence decoding outputs)", kSchemaV2},
      {3, "add comm.modeled_ms (network model)", kSchemaV3},
      {4, "create meta (the database's identity)", kSchemaV4},
  };
  return steps;
}

int ReadSchemaVersion(Connection& connection) {
  CachedStatement statement = connection.Prepare("PRAGMA user_version");
  if (!statement->Step()) connection.Fail("cannot read the schema version", "PRAGMA user_version");
  return static_cast<int>(statement->Int64(0));
}

int MigrateSchema(Connection& connection, const std::vector<MigrationStep>& steps) {
  const int target = static_cast<int>(steps.size());
  for (int i = 0; i < target; i++) {
    if (steps[i].to_version != i + 1) {
      throw StoreError(connection.path() + ": migration step " + std::to_string(i) +
                       " goes to version " + std::to_string(steps[i].to_version) + ", expected " +
                       std::to_string(i + 1) + " (steps must be consecutive)");
    }
  }
  const auto check_not_newer = [&](int version) {
    if (version > target) {
      throw StoreError(connection.path() + ": the database has schema version " +
                       std::to_string(version) + ", newer than version " + std::to_string(target) +
                       " that this build of moebench knows; open it with a newer moebench");
    }
  };
  // Most opens find the file current; they take no write lock.
  const int before = ReadSchemaVersion(connection);
  check_not_newer(before);
  if (before == target) return before;

  Transaction transaction(connection);
  // Read again under the write lock: another process may have migrated meanwhile.
  const int current = ReadSchemaVersion(connection);
  check_not_newer(current);
  for (int version = current; version < target; version++) {
    const MigrationStep& step = steps[version];
    try {
      connection.Exec(step.sql);
    } catch (const StoreError& error) {
      throw StoreError("migration to schema version " + std::to_string(step.to_version) + " (" +
                       step.description + ") failed: " + error.what());
    }
  }
  connection.Exec("PRAGMA user_version = " + std::to_string(target));
  transaction.Commit();
  return current;
}

}  // namespace moebench
