// The results store: schema, migrations and how files are opened (harness/store/schema.h).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "harness/store/schema.h"
#include "harness/store/sqlite_util.h"
#include "tests/core/store_test_util.h"

namespace moebench {
namespace {

using namespace store_test;  // NOLINT(build/namespaces): the shared fixture and builders

// ---- schema and migrations -----------------------------------------------------------------

TEST_F(StoreTest, MigrationFromNothingCreatesEveryTableAndItsDirectory) {
  const std::string path = Path("nested/dir/results.db");
  {
    Store store(path);
    EXPECT_EQ(store.SchemaVersion(), Store::kSchemaVersion);
    EXPECT_EQ(store.path(), path);
  }
  ASSERT_TRUE(fs::exists(path));
  RawDb db(path);
  EXPECT_EQ(db.One("PRAGMA user_version"), std::to_string(Store::kSchemaVersion));
  EXPECT_EQ(db.One("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(db.Column("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
            (std::vector<std::string>{"comm", "evals", "expert_load", "latest_metrics", "meta",
                                      "metrics", "outputs", "runs", "sweeps"}));
  // Column names are an interface: the report scripts read these tables directly.
  EXPECT_EQ(ColumnsOf(db, "sweeps"),
            (std::vector<std::string>{"id", "name", "manifest", "manifest_hash", "created_at",
                                      "git_commit", "dirty"}));
  EXPECT_EQ(ColumnsOf(db, "runs"),
            (std::vector<std::string>{"id",           "sweep_id",      "method",       "size",
                                      "seed",         "spec_json",     "status",       "started_at",
                                      "ended_at",     "exit_code",     "error",        "host",
                                      "device",       "world_size",    "threads",      "libs",
                                      "params_total", "params_active", "heartbeat_at", "pid"}));
  EXPECT_EQ(ColumnsOf(db, "metrics"),
            (std::vector<std::string>{"run_id", "step", "wall_s", "key", "value"}));
  EXPECT_EQ(ColumnsOf(db, "latest_metrics"),
            (std::vector<std::string>{"run_id", "key", "step", "wall_s", "value"}));
  EXPECT_EQ(ColumnsOf(db, "evals"),
            (std::vector<std::string>{"run_id", "step", "wall_s", "split", "lang", "k", "bleu",
                                      "chrf", "signature", "decoding", "loss", "n_sentences"}));
  EXPECT_EQ(ColumnsOf(db, "comm"),
            (std::vector<std::string>{"run_id", "step", "layer", "phase", "calls", "bytes_local",
                                      "bytes_intra_node", "bytes_inter_node", "wire_bytes",
                                      "wire_intra_node", "wire_inter_node", "ms", "modeled_ms"}));
  EXPECT_EQ(ColumnsOf(db, "expert_load"),
            (std::vector<std::string>{"run_id", "step", "layer", "expert", "tokens", "dropped"}));
  EXPECT_EQ(ColumnsOf(db, "meta"), (std::vector<std::string>{"key", "value"}));
  EXPECT_EQ(db.One("SELECT count(*) FROM meta WHERE key = 'db_id'"), "1");
}

TEST_F(StoreTest, SchemaEnforcesUniqueKeysAndValidStatuses) {
  const std::string path = Path();
  { Store store(path); }
  RawDb db(path);
  const std::string duplicated[] = {
      "INSERT INTO metrics VALUES ('r', 1, 0.0, 'loss', 1.0)",
      "INSERT INTO latest_metrics VALUES ('r', 'loss', 1, 0.0, 1.0)",
      "INSERT INTO evals VALUES ('r', 1, 0.0, 'valid', 'de', 1, 20.0, NULL, 's', '{}', NULL, 9)",
      "INSERT INTO comm VALUES ('r', 1, 0, 'fwd', 1, 1, 1, 1, 1, 1, 1, 1.0, 2.0)",
      "INSERT INTO expert_load VALUES ('r', 1, 0, 3, 10, 0)",
  };
  for (const std::string& sql : duplicated) {
    EXPECT_EQ(db.Exec(sql), SQLITE_OK) << sql;
    EXPECT_EQ(db.Exec(sql), SQLITE_CONSTRAINT) << "second insert accepted: " << sql;
  }
  EXPECT_EQ(db.Exec("INSERT INTO runs (id, method, size, seed, spec_json, status) "
                    "VALUES ('x', 'switch', 'tiny', 1, '{}', 'crashed')"),
            SQLITE_CONSTRAINT);
}

TEST_F(StoreTest, MigratesAnExistingEmptyFile) {
  const std::string path = Path();
  std::ofstream(path).close();
  ASSERT_EQ(fs::file_size(path), 0u);
  Store store(path);
  EXPECT_EQ(store.SchemaVersion(), Store::kSchemaVersion);
  RawDb db(path);
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "9");
}

TEST_F(StoreTest, ReopeningIsIdempotent) {
  const std::string path = Path();
  {
    Store store(path);
    store.UpsertRun(FullRun("run-a"));
    store.LogMetrics("run-a", {MakeMetric(1, "loss", 4.0)});
  }
  for (int i = 0; i < 2; i++) {
    Store store(path);
    EXPECT_EQ(store.SchemaVersion(), Store::kSchemaVersion);
    ASSERT_EQ(store.ListRuns().size(), 1u);
    EXPECT_EQ(store.MetricHistory("run-a", "loss").size(), 1u);
  }
  RawDb db(path);
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "9");
}

TEST(SchemaTest, MigrationStepsAreConsecutiveAndReachTheSchemaVersion) {
  const std::vector<MigrationStep>& steps = SchemaMigrations();
  ASSERT_EQ(steps.size(), static_cast<size_t>(Store::kSchemaVersion));
  for (size_t i = 0; i < steps.size(); i++) EXPECT_EQ(steps[i].to_version, static_cast<int>(i + 1));
}

TEST_F(StoreTest, AVersion2DatabaseMigratesKeepingItsRows) {
  // A file as moebench with schema version 2 wrote it: the first two steps, one run, a metric,
  // a comm row (no modeled_ms column yet) and an output.
  const std::string path = Path();
  {
    Connection connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    const std::vector<MigrationStep> v2(SchemaMigrations().begin(), SchemaMigrations().begin() + 2);
    ASSERT_EQ(v2.back().to_version, 2);
    MigrateSchema(connection, v2);
  }
  {
    RawDb db(path);
    ASSERT_EQ(db.One("PRAGMA user_version"), "2");
    ASSERT_EQ(db.Exec("INSERT INTO runs (id, method, size, seed, spec_json, status) "
                      "VALUES ('run-a', 'switch', 'tiny', 1, '{}', 'finished')"),
              SQLITE_OK);
    ASSERT_EQ(db.Exec("INSERT INTO metrics VALUES ('run-a', 10, 1.0, 'comm.ms', 0.5)"), SQLITE_OK);
    ASSERT_EQ(db.Exec("INSERT INTO comm VALUES ('run-a', 10, 1, 'fwd', 2, 100, 200, 300, 600, "
                      "210, 320, 0.75)"),
              SQLITE_OK);
    ASSERT_EQ(db.Exec("INSERT INTO outputs VALUES ('run-a', 10, 'test', 'de', 0, 0, 'h', 'r')"),
              SQLITE_OK);
  }
  // A read-only open refuses the old file; a read-write open migrates it.
  EXPECT_THROW({ Store old(path, Store::Mode::kReadOnly); }, StoreError);
  {
    Store store(path);
    EXPECT_EQ(store.SchemaVersion(), Store::kSchemaVersion);
    ASSERT_EQ(store.ListRuns().size(), 1u);
    EXPECT_EQ(store.MetricHistory("run-a", "comm.ms").size(), 1u);
    EXPECT_EQ(store.Outputs("run-a", "test", 0).size(), 1u);
    const std::vector<CommRow> rows = store.Comm("run-a");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].calls, 2);
    EXPECT_EQ(rows[0].bytes_inter_node, 300);
    EXPECT_EQ(rows[0].wire_inter_node, 320);
    EXPECT_EQ(rows[0].ms, 0.75);
    EXPECT_EQ(rows[0].modeled_ms, 0.0);  // rows written before version 3
    // New rows carry their modeled time, next to the old ones.
    CommRow row = MakeComm("run-a", 20, 1, "fwd");
    row.modeled_ms = 4.5;
    store.LogComm({row});
    ASSERT_EQ(store.Comm("run-a").size(), 2u);
    EXPECT_EQ(store.Comm("run-a")[1].modeled_ms, 4.5);
  }
  RawDb db(path);
  EXPECT_EQ(db.One("PRAGMA user_version"), std::to_string(Store::kSchemaVersion));
  EXPECT_EQ(db.One("SELECT count(*) FROM comm"), "2");
}

TEST_F(StoreTest, MigrateAppliesOnlyTheStepsTheFileHasNotSeen) {
  const std::string path = Path();
  Connection connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  const std::vector<MigrationStep> v1 = {{1, "create a", "CREATE TABLE a (x INTEGER)"}};
  EXPECT_EQ(MigrateSchema(connection, v1), 0);
  EXPECT_EQ(ReadSchemaVersion(connection), 1);
  std::vector<MigrationStep> v2 = v1;
  v2.push_back({2, "create b, fill a", "CREATE TABLE b (y TEXT); INSERT INTO a VALUES (7);"});
  // Step 1 would fail if it ran again ("table a already exists").
  EXPECT_EQ(MigrateSchema(connection, v2), 1);
  EXPECT_EQ(ReadSchemaVersion(connection), 2);
  EXPECT_EQ(MigrateSchema(connection, v2), 2);  // nothing left to do
  RawDb db(path);
  EXPECT_EQ(db.One("SELECT count(*) FROM a"), "1");
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE name = 'b'"), "1");
}

TEST_F(StoreTest, FailedMigrationLeavesTheFileAsItWas) {
  const std::string path = Path();
  Connection connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  const std::vector<MigrationStep> steps = {
      {1, "create a", "CREATE TABLE a (x INTEGER)"},
      {2, "broken", "CREATE TABLE b (y TEXT); CREATE TABLEX oops (z)"},
  };
  try {
    MigrateSchema(connection, steps);
    FAIL() << "a broken migration succeeded";
  } catch (const StoreError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("version 2"), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
  }
  // Steps run in one transaction: neither step 1 nor step 2 is left behind.
  EXPECT_EQ(ReadSchemaVersion(connection), 0);
  RawDb db(path);
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "0");
}

TEST_F(StoreTest, NewerSchemaVersionIsRefusedNamingBothVersions) {
  const std::string path = Path();
  { Store store(path); }
  {
    RawDb db(path);
    ASSERT_EQ(db.Exec("PRAGMA user_version = 7"), SQLITE_OK);
  }
  for (Store::Mode mode : {Store::Mode::kReadWrite, Store::Mode::kReadOnly}) {
    try {
      Store store(path, mode);
      FAIL() << "opened a file from the future";
    } catch (const StoreError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find("schema version 7"), std::string::npos) << message;
      EXPECT_NE(message.find("version " + std::to_string(Store::kSchemaVersion)), std::string::npos)
          << message;
    }
  }
  RawDb db(path);
  EXPECT_EQ(db.One("PRAGMA user_version"), "7");  // left alone
}

TEST_F(StoreTest, ReadOnlyOpenOfAMissingFileFailsNamingThePath) {
  const std::string path = Path("missing/results.db");
  try {
    Store store(path, Store::Mode::kReadOnly);
    FAIL() << "opened a missing file read-only";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(Path("missing")));
}

TEST_F(StoreTest, ReadOnlyOpenOfAnUnmigratedFileFails) {
  const std::string path = Path();
  std::ofstream(path).close();
  try {
    Store store(path, Store::Mode::kReadOnly);
    FAIL() << "opened an unmigrated file read-only";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("schema version 0"), std::string::npos)
        << error.what();
  }
}

TEST_F(StoreTest, AFileThatIsNotADatabaseFailsNamingThePath) {
  const std::string path = Path();
  std::ofstream(path) << "this is not an SQLite database, just some text long enough to matter";
  try {
    Store store(path);
    FAIL() << "opened a text file";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
}

TEST_F(StoreTest, ReadOnlyStoreReadsButRefusesWrites) {
  const std::string path = Path();
  {
    Store store(path);
    store.UpsertRun(FullRun("run-a"));
  }
  Store store(path, Store::Mode::kReadOnly);
  ASSERT_EQ(store.ListRuns().size(), 1u);
  EXPECT_EQ(store.Query("SELECT id FROM runs").rows.size(), 1u);
  try {
    store.UpsertRun(FullRun("run-b"));
    FAIL() << "a read-only store wrote";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("read-only"), std::string::npos) << error.what();
  }
  EXPECT_THROW(store.LogMetrics("run-a", {MakeMetric(1, "loss", 1.0)}), StoreError);
  EXPECT_EQ(store.ListRuns().size(), 1u);
}

TEST_F(StoreTest, AMovedStoreKeepsWorking) {
  Store first(Path());
  first.UpsertRun(BareRun("run-a"));
  Store second(std::move(first));
  second.UpsertRun(BareRun("run-b"));
  EXPECT_EQ(second.ListRuns().size(), 2u);
}

}  // namespace
}  // namespace moebench
