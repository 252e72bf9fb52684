// Tests for the results store (harness/store) and the timestamp helpers (harness/util/time.h).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness/store/schema.h"
#include "harness/store/sqlite_util.h"
#include "harness/store/store.h"
#include "harness/util/time.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

const char* const kRefusal =
    "query: the database is opened read-only; refusing a statement that writes: ";

// ---- raw SQLite helpers: the tests check the file itself, not only the Store's view ---------

class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) & 0xff;
  }
  // The first column of every row, as text ("NULL" for NULL).
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> values;
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      values.push_back(text == nullptr ? "NULL" : reinterpret_cast<const char*>(text));
    }
    sqlite3_finalize(stmt);
    return values;
  }
  std::string One(const std::string& sql) {
    std::vector<std::string> values = Column(sql);
    EXPECT_EQ(values.size(), 1u) << sql;
    return values.empty() ? "" : values[0];
  }

 private:
  sqlite3* db_ = nullptr;
};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("moebench_test_store_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name = "results.db") const { return (dir_ / name).string(); }

  fs::path dir_;
};

RunRow FullRun(const std::string& id) {
  RunRow run;
  run.id = id;
  run.sweep_id = "sweep-1";
  run.method = "switch";
  run.size = "tiny";
  run.seed = 42;
  run.spec_json = R"({"method":"switch","seed":42})";
  run.status = RunStatus::kFailed;
  run.started_at = "2024-01-01T00:00:00.000Z";
  run.ended_at = "2024-01-01T01:00:00.000Z";
  run.exit_code = 3;
  run.error = "loss is NaN at step 17";
  run.host = "node01";
  run.device = "cpu";
  run.world_size = 4;
  run.threads = 8;
  run.libs = R"({"torch":"2.1.0","sqlite":"3.40.1"})";
  run.params_total = 123456789012LL;
  run.params_active = 23456789LL;
  run.heartbeat_at = "2024-01-01T00:59:59.999Z";
  run.pid = 31337;
  return run;
}

// A run with every optional field unset.
RunRow BareRun(const std::string& id) {
  RunRow run;
  run.id = id;
  run.method = "gshard";
  run.size = "small";
  run.seed = 1;
  run.spec_json = "{}";
  return run;
}

void ExpectRunsEqual(const RunRow& a, const RunRow& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.sweep_id, b.sweep_id);
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.spec_json, b.spec_json);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.ended_at, b.ended_at);
  EXPECT_EQ(a.exit_code, b.exit_code);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.world_size, b.world_size);
  EXPECT_EQ(a.threads, b.threads);
  EXPECT_EQ(a.libs, b.libs);
  EXPECT_EQ(a.params_total, b.params_total);
  EXPECT_EQ(a.params_active, b.params_active);
  EXPECT_EQ(a.heartbeat_at, b.heartbeat_at);
  EXPECT_EQ(a.pid, b.pid);
}

MetricRow MakeMetric(int64_t step, const std::string& key, double value) {
  MetricRow row;
  row.step = step;
  row.wall_s = 0.25 * static_cast<double>(step);
  row.key = key;
  row.value = value;
  return row;
}

EvalRow MakeEval(const std::string& run_id, int64_t step, const std::string& lang, int k) {
  EvalRow row;
  row.run_id = run_id;
  row.step = step;
  row.wall_s = 10.5;
  row.split = "valid";
  row.lang = lang;
  row.k = k;
  row.bleu = 27.25;
  row.chrf = 55.5;
  row.signature = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.0";
  row.decoding = R"({"beam":4})";
  row.loss = 2.125;
  row.n_sentences = 500;
  return row;
}

CommRow MakeComm(const std::string& run_id, int64_t step, int layer, const std::string& phase) {
  CommRow row;
  row.run_id = run_id;
  row.step = step;
  row.layer = layer;
  row.phase = phase;
  row.calls = 2;
  row.bytes_local = 1LL << 20;
  row.bytes_intra_node = 3LL << 30;
  row.bytes_inter_node = 5LL << 40;  // beyond 32 bits on purpose
  row.wire_bytes = 7LL << 40;
  row.wire_intra_node = 11;
  row.wire_inter_node = 13;
  row.ms = 1.5;
  row.modeled_ms = 0.125;
  return row;
}

ExpertLoadRow MakeLoad(const std::string& run_id, int64_t step, int layer, int expert) {
  ExpertLoadRow row;
  row.run_id = run_id;
  row.step = step;
  row.layer = layer;
  row.expert = expert;
  row.tokens = 100 + expert;
  row.dropped = expert;
  return row;
}

std::vector<std::string> ColumnsOf(RawDb& db, const std::string& table) {
  return db.Column("SELECT name FROM pragma_table_info('" + table + "') ORDER BY cid");
}

// ---- time ----------------------------------------------------------------------------------

std::chrono::system_clock::time_point FromMillis(int64_t millis) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(millis));
}

int64_t ToMillis(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

TEST_F(StoreTest, OutputsRoundTripAndResumeDeletesLaterSteps) {
  Store store(Path());
  store.LogOutputs({{"r", 10, "test", "de", 0, 0, "ein Haus", "ein Haus"},
                    {"r", 10, "test", "fr", 0, 1, "une", "une maison"},
                    {"r", 20, "test", "de", 0, 0, "Haus", "ein Haus"},
                    {"r", 10, "test", "de", 2, 0, "k2", "ein Haus"}});
  auto rows = store.Outputs("r", "test", 0);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].lang, "fr");
  EXPECT_EQ(rows[1].hyp, "une");
  EXPECT_EQ(rows[1].ref, "une maison");
  EXPECT_EQ(store.Outputs("r", "test", 2).size(), 1u);
  store.LogOutputs({{"r", 10, "test", "de", 0, 0, "ein Haus!", "ein Haus"}});  // no duplicate
  EXPECT_EQ(store.Outputs("r", "test", 0).size(), 3u);
  store.DeleteRunDataAfter("r", 10);
  EXPECT_EQ(store.Outputs("r", "test", 0).size(), 2u);
  EXPECT_EQ(store.Outputs("r", "test", 0)[0].hyp, "ein Haus!");
}

TEST(TimeTest, FormatsKnownInstants) {
  EXPECT_EQ(FormatIso8601(FromMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatIso8601(FromMillis(-1)), "1969-12-31T23:59:59.999Z");
  // 2000-03-01 is 30*365 + 7 leap days + 31 + 29 days = 11017 days after the epoch.
  EXPECT_EQ(FormatIso8601(FromMillis(11017LL * 86400000 + 1234)), "2000-03-01T00:00:01.234Z");
  EXPECT_EQ(FormatIso8601(FromMillis(11016LL * 86400000)), "2000-02-29T00:00:00.000Z");
  // 2024-01-01 is 54*365 + 13 leap days = 19723 days; 12:34:56.789 is 45296.789 s.
  EXPECT_EQ(FormatIso8601(FromMillis(19723LL * 86400000 + 45296789)), "2024-01-01T12:34:56.789Z");
}

TEST(TimeTest, ParsesWhatItFormats) {
  EXPECT_EQ(ToMillis(ParseIso8601("2024-01-01T12:34:56.789Z")), 19723LL * 86400000 + 45296789);
  EXPECT_EQ(ToMillis(ParseIso8601("2024-01-01T12:34:56Z")), 19723LL * 86400000 + 45296000);
  // Finer fractions are truncated to milliseconds.
  EXPECT_EQ(ToMillis(ParseIso8601("2024-01-01T12:34:56.789999Z")), 19723LL * 86400000 + 45296789);
  EXPECT_EQ(ToMillis(ParseIso8601("1969-12-31T23:59:59.999Z")), -1);
  const std::string now = NowIso8601();
  EXPECT_EQ(now.size(), 24u);
  EXPECT_EQ(FormatIso8601(ParseIso8601(now)), now);
}

TEST(TimeTest, RejectsMalformedTimestampsNamingThem) {
  for (const std::string bad :
       {"", "2024-01-01 12:34:56Z", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00Zjunk"}) {
    try {
      ParseIso8601(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find("'" + bad + "'"), std::string::npos) << error.what();
    }
  }
}

// ---- run status ----------------------------------------------------------------------------

TEST(RunStatusTest, NamesRoundTripAndUnknownNamesAreRejected) {
  const RunStatus all[] = {RunStatus::kPending, RunStatus::kRunning, RunStatus::kFinished,
                           RunStatus::kFailed, RunStatus::kKilled};
  const char* const names[] = {"pending", "running", "finished", "failed", "killed"};
  for (int i = 0; i < 5; i++) {
    EXPECT_STREQ(RunStatusName(all[i]), names[i]);
    EXPECT_EQ(ParseRunStatus(names[i]), all[i]);
  }
  EXPECT_FALSE(IsTerminal(RunStatus::kPending));
  EXPECT_FALSE(IsTerminal(RunStatus::kRunning));
  EXPECT_TRUE(IsTerminal(RunStatus::kKilled));
  try {
    ParseRunStatus("crashed");
    FAIL() << "accepted an unknown status";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("'crashed'"), std::string::npos) << error.what();
  }
}

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
            (std::vector<std::string>{"comm", "evals", "expert_load", "latest_metrics", "metrics",
                                      "outputs", "runs", "sweeps"}));
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
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "8");
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
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "8");
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

// ---- round trips ---------------------------------------------------------------------------

TEST_F(StoreTest, SweepsRoundTrip) {
  Store store(Path());
  SweepRow old_sweep{
      "sweep-1", "demo", "[sweep]\nname = \"demo\"\n", "hash-1", "2024-01-01T00:00:00.000Z",
      "abc123",  true};
  SweepRow new_sweep{"sweep-2",
                     "demo",
                     "[sweep]\nname = \"demo\"\nseeds = [2]\n",
                     "hash-2",
                     "2024-02-01T00:00:00.000Z",
                     "def456",
                     false};
  store.UpsertSweep(new_sweep);
  store.UpsertSweep(old_sweep);
  const std::optional<SweepRow> by_id = store.GetSweep("sweep-1");
  ASSERT_TRUE(by_id.has_value());
  EXPECT_EQ(by_id->id, "sweep-1");
  EXPECT_EQ(by_id->name, "demo");
  EXPECT_EQ(by_id->manifest, old_sweep.manifest);
  EXPECT_EQ(by_id->manifest_hash, "hash-1");
  EXPECT_EQ(by_id->created_at, "2024-01-01T00:00:00.000Z");
  EXPECT_EQ(by_id->git_commit, "abc123");
  EXPECT_TRUE(by_id->dirty);
  // By name: the most recently created sweep of that name.
  const std::optional<SweepRow> by_name = store.GetSweep("demo");
  ASSERT_TRUE(by_name.has_value());
  EXPECT_EQ(by_name->id, "sweep-2");
  EXPECT_FALSE(by_name->dirty);
  EXPECT_FALSE(store.GetSweep("nope").has_value());
  // Upsert updates every column.
  old_sweep.name = "renamed";
  old_sweep.manifest = "m";
  old_sweep.manifest_hash = "h";
  old_sweep.created_at = "2024-03-01T00:00:00.000Z";
  old_sweep.git_commit = "fff";
  old_sweep.dirty = false;
  store.UpsertSweep(old_sweep);
  const std::vector<SweepRow> sweeps = store.ListSweeps();
  ASSERT_EQ(sweeps.size(), 2u);
  EXPECT_EQ(sweeps[0].id, "sweep-2");
  EXPECT_EQ(sweeps[1].id, "sweep-1");
  EXPECT_EQ(sweeps[1].name, "renamed");
  EXPECT_EQ(sweeps[1].manifest, "m");
  EXPECT_EQ(sweeps[1].manifest_hash, "h");
  EXPECT_EQ(sweeps[1].created_at, "2024-03-01T00:00:00.000Z");
  EXPECT_EQ(sweeps[1].git_commit, "fff");
  EXPECT_FALSE(sweeps[1].dirty);
}

TEST_F(StoreTest, RunsRoundTripIncludingUnsetFields) {
  const std::string path = Path();
  Store store(path);
  const RunRow full = FullRun("run-full");
  const RunRow bare = BareRun("run-bare");
  store.UpsertRun(full);
  store.UpsertRun(bare);
  std::optional<RunRow> read = store.FindRun("run-full");
  ASSERT_TRUE(read.has_value());
  ExpectRunsEqual(*read, full);
  read = store.FindRun("run-bare");
  ASSERT_TRUE(read.has_value());
  ExpectRunsEqual(*read, bare);
  EXPECT_FALSE(read->exit_code.has_value());
  EXPECT_EQ(read->libs, "{}");
  EXPECT_EQ(read->world_size, 1);
  // Unset fields are NULL in the file, so SQL users can write "ended_at IS NULL".
  RawDb db(path);
  EXPECT_EQ(db.One("SELECT coalesce(sweep_id, 'NULL') || (started_at IS NULL) || "
                   "(ended_at IS NULL) || (exit_code IS NULL) || (error IS NULL) || "
                   "(heartbeat_at IS NULL) || (pid IS NULL) FROM runs WHERE id = 'run-bare'"),
            "NULL111111");
  EXPECT_EQ(db.One("SELECT status FROM runs WHERE id = 'run-bare'"), "pending");

  // Upsert updates every column, including back to unset.
  RunRow changed = BareRun("run-full");
  changed.status = RunStatus::kKilled;
  changed.exit_code = 0;  // a set zero is not the same as unset
  store.UpsertRun(changed);
  read = store.FindRun("run-full");
  ASSERT_TRUE(read.has_value());
  ExpectRunsEqual(*read, changed);
  EXPECT_EQ(store.ListRuns().size(), 2u);
}

TEST_F(StoreTest, MetricsRoundTripIncludingNaNAndInfinity) {
  Store store(Path());
  const double inf = std::numeric_limits<double>::infinity();
  store.LogMetrics("run-a", {MakeMetric(1, "loss", 4.5), MakeMetric(2, "loss", -0.125),
                             MakeMetric(1, "grad_norm", inf), MakeMetric(3, "loss", std::nan(""))});
  const std::vector<MetricRow> loss = store.MetricHistory("run-a", "loss");
  ASSERT_EQ(loss.size(), 3u);
  EXPECT_EQ(loss[0].step, 1);
  EXPECT_EQ(loss[0].wall_s, 0.25);
  EXPECT_EQ(loss[0].key, "loss");
  EXPECT_EQ(loss[0].value, 4.5);
  EXPECT_EQ(loss[1].step, 2);
  EXPECT_EQ(loss[1].wall_s, 0.5);
  EXPECT_EQ(loss[1].value, -0.125);
  EXPECT_EQ(loss[2].step, 3);
  EXPECT_TRUE(std::isnan(loss[2].value));
  const std::vector<MetricRow> grad = store.MetricHistory("run-a", "grad_norm");
  ASSERT_EQ(grad.size(), 1u);
  EXPECT_EQ(grad[0].value, inf);
  EXPECT_TRUE(store.MetricHistory("run-b", "loss").empty());
}

TEST_F(StoreTest, EvalsRoundTripIncludingUnsetOptionals) {
  Store store(Path());
  EvalRow full = MakeEval("run-a", 100, "de", 2);
  EvalRow bare = MakeEval("run-a", 100, "de", 1);
  bare.chrf.reset();
  bare.loss.reset();
  bare.decoding = "{}";
  store.LogEvals({full, bare, MakeEval("run-b", 100, "fr", 1)});
  const std::vector<EvalRow> rows = store.Evals("run-a");
  ASSERT_EQ(rows.size(), 2u);
  // Ordered by step, split, lang, k: k = 1 first.
  const EvalRow* expected[] = {&bare, &full};
  for (int i = 0; i < 2; i++) {
    const EvalRow& got = rows[i];
    const EvalRow& want = *expected[i];
    EXPECT_EQ(got.run_id, want.run_id);
    EXPECT_EQ(got.step, want.step);
    EXPECT_EQ(got.wall_s, want.wall_s);
    EXPECT_EQ(got.split, want.split);
    EXPECT_EQ(got.lang, want.lang);
    EXPECT_EQ(got.k, want.k);
    EXPECT_EQ(got.bleu, want.bleu);
    EXPECT_EQ(got.chrf, want.chrf);
    EXPECT_EQ(got.signature, want.signature);
    EXPECT_EQ(got.decoding, want.decoding);
    EXPECT_EQ(got.loss, want.loss);
    EXPECT_EQ(got.n_sentences, want.n_sentences);
  }
  EXPECT_FALSE(rows[0].chrf.has_value());
  EXPECT_FALSE(rows[0].loss.has_value());
  EXPECT_EQ(rows[1].chrf, std::optional<double>(55.5));
}

TEST_F(StoreTest, CommRoundTrips) {
  Store store(Path());
  const CommRow fwd = MakeComm("run-a", 5, 1, "fwd");
  CommRow bwd = MakeComm("run-a", 5, 1, "bwd");
  bwd.calls = 4;
  bwd.ms = 0.75;
  store.LogComm({fwd, bwd, MakeComm("run-b", 5, 1, "fwd")});
  const std::vector<CommRow> rows = store.Comm("run-a");
  ASSERT_EQ(rows.size(), 2u);
  const CommRow* expected[] = {&bwd, &fwd};  // "bwd" < "fwd"
  for (int i = 0; i < 2; i++) {
    const CommRow& got = rows[i];
    const CommRow& want = *expected[i];
    EXPECT_EQ(got.run_id, want.run_id);
    EXPECT_EQ(got.step, want.step);
    EXPECT_EQ(got.layer, want.layer);
    EXPECT_EQ(got.phase, want.phase);
    EXPECT_EQ(got.calls, want.calls);
    EXPECT_EQ(got.bytes_local, want.bytes_local);
    EXPECT_EQ(got.bytes_intra_node, want.bytes_intra_node);
    EXPECT_EQ(got.bytes_inter_node, want.bytes_inter_node);
    EXPECT_EQ(got.wire_bytes, want.wire_bytes);
    EXPECT_EQ(got.wire_intra_node, want.wire_intra_node);
    EXPECT_EQ(got.wire_inter_node, want.wire_inter_node);
    EXPECT_EQ(got.ms, want.ms);
    EXPECT_EQ(got.modeled_ms, want.modeled_ms);
  }
  EXPECT_EQ(rows[1].bytes_inter_node, 5497558138880LL);  // 5 * 2^40
}

TEST_F(StoreTest, ExpertLoadRoundTrips) {
  Store store(Path());
  store.LogExpertLoad(
      {MakeLoad("run-a", 10, 1, 3), MakeLoad("run-a", 10, 0, 7), MakeLoad("run-b", 10, 0, 0)});
  const std::vector<ExpertLoadRow> rows = store.ExpertLoad("run-a");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].run_id, "run-a");
  EXPECT_EQ(rows[0].step, 10);
  EXPECT_EQ(rows[0].layer, 0);
  EXPECT_EQ(rows[0].expert, 7);
  EXPECT_EQ(rows[0].tokens, 107);
  EXPECT_EQ(rows[0].dropped, 7);
  EXPECT_EQ(rows[1].layer, 1);
  EXPECT_EQ(rows[1].expert, 3);
  EXPECT_EQ(rows[1].tokens, 103);
  EXPECT_EQ(rows[1].dropped, 3);
}

// ---- metric semantics ----------------------------------------------------------------------

TEST_F(StoreTest, LatestMetricsKeepsTheHighestStep) {
  Store store(Path());
  store.LogMetrics("run-a", {MakeMetric(10, "loss", 2.0), MakeMetric(10, "lr", 0.001)});
  // A late row for an earlier step does not displace the latest one...
  store.LogMetrics("run-a", {MakeMetric(5, "loss", 3.0)});
  std::map<std::string, MetricRow> latest = store.LatestMetrics("run-a");
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest["loss"].step, 10);
  EXPECT_EQ(latest["loss"].value, 2.0);
  EXPECT_EQ(latest["loss"].key, "loss");
  // ...a later step does, also within one batch, whatever the order of its rows...
  store.LogMetrics("run-a", {MakeMetric(30, "loss", 1.0), MakeMetric(20, "loss", 1.5)});
  latest = store.LatestMetrics("run-a");
  EXPECT_EQ(latest["loss"].step, 30);
  EXPECT_EQ(latest["loss"].value, 1.0);
  EXPECT_EQ(latest["loss"].wall_s, 7.5);
  EXPECT_EQ(latest["lr"].step, 10);
  // ...and re-logging the latest step refreshes its value.
  store.LogMetrics("run-a", {MakeMetric(30, "loss", 0.5)});
  EXPECT_EQ(store.LatestMetrics("run-a")["loss"].value, 0.5);
  EXPECT_TRUE(store.LatestMetrics("run-b").empty());
}

TEST_F(StoreTest, RelogingTheSameKeysDoesNotDuplicateRows) {
  const std::string path = Path();
  Store store(path);
  store.LogMetrics("run-a", {MakeMetric(1, "loss", 4.0), MakeMetric(2, "loss", 3.0)});
  store.LogMetrics("run-a", {MakeMetric(1, "loss", 3.9), MakeMetric(2, "loss", 2.9)});
  const std::vector<MetricRow> history = store.MetricHistory("run-a", "loss");
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].value, 3.9);
  EXPECT_EQ(history[1].value, 2.9);

  EvalRow eval = MakeEval("run-a", 2, "de", 1);
  store.LogEvals({eval});
  eval.bleu = 30.0;
  store.LogEvals({eval});
  ASSERT_EQ(store.Evals("run-a").size(), 1u);
  EXPECT_EQ(store.Evals("run-a")[0].bleu, 30.0);

  CommRow comm = MakeComm("run-a", 2, 0, "total");
  store.LogComm({comm});
  comm.ms = 9.0;
  store.LogComm({comm});
  ASSERT_EQ(store.Comm("run-a").size(), 1u);
  EXPECT_EQ(store.Comm("run-a")[0].ms, 9.0);

  ExpertLoadRow load = MakeLoad("run-a", 2, 0, 1);
  store.LogExpertLoad({load});
  load.tokens = 55;
  store.LogExpertLoad({load});
  ASSERT_EQ(store.ExpertLoad("run-a").size(), 1u);
  EXPECT_EQ(store.ExpertLoad("run-a")[0].tokens, 55);

  RawDb db(path);
  EXPECT_EQ(db.One("SELECT count(*) FROM metrics"), "2");
  EXPECT_EQ(db.One("SELECT count(*) FROM latest_metrics"), "1");
}

TEST_F(StoreTest, LoggingRejectsEmptyRunIdsAndKeys) {
  Store store(Path());
  EXPECT_THROW(store.LogMetrics("", {MakeMetric(1, "loss", 1.0)}), StoreError);
  EXPECT_THROW(store.LogMetrics("run-a", {MakeMetric(1, "", 1.0)}), StoreError);
  EXPECT_THROW(store.LogEvals({MakeEval("", 1, "de", 1)}), StoreError);
  EXPECT_THROW(store.UpsertRun(BareRun("")), StoreError);
  EXPECT_TRUE(store.MetricHistory("run-a", "loss").empty());
}

TEST_F(StoreTest, DeleteRunDataAfterRemovesOnlyLaterRowsAndFixesLatestMetrics) {
  Store store(Path());
  for (const std::string run : {"run-a", "run-b"}) {
    std::vector<MetricRow> metrics;
    for (int step = 1; step <= 5; step++) metrics.push_back(MakeMetric(step, "loss", 10.0 - step));
    metrics.push_back(MakeMetric(4, "eval_only_at_4", 1.0));
    store.LogMetrics(run, metrics);
    store.LogEvals({MakeEval(run, 2, "de", 1), MakeEval(run, 4, "de", 1)});
    store.LogComm({MakeComm(run, 3, 0, "fwd"), MakeComm(run, 4, 0, "fwd")});
    store.LogExpertLoad({MakeLoad(run, 3, 0, 0), MakeLoad(run, 5, 0, 0)});
  }
  store.DeleteRunDataAfter("run-a", 3);

  const std::vector<MetricRow> loss = store.MetricHistory("run-a", "loss");
  ASSERT_EQ(loss.size(), 3u);
  EXPECT_EQ(loss.back().step, 3);
  EXPECT_TRUE(store.MetricHistory("run-a", "eval_only_at_4").empty());
  std::map<std::string, MetricRow> latest = store.LatestMetrics("run-a");
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest["loss"].step, 3);
  EXPECT_EQ(latest["loss"].value, 7.0);
  EXPECT_EQ(latest["loss"].wall_s, 0.75);
  ASSERT_EQ(store.Evals("run-a").size(), 1u);
  EXPECT_EQ(store.Evals("run-a")[0].step, 2);
  ASSERT_EQ(store.Comm("run-a").size(), 1u);  // step 3 is kept: only step > 3 goes
  EXPECT_EQ(store.Comm("run-a")[0].step, 3);
  ASSERT_EQ(store.ExpertLoad("run-a").size(), 1u);
  EXPECT_EQ(store.ExpertLoad("run-a")[0].step, 3);

  // The other run is untouched.
  EXPECT_EQ(store.MetricHistory("run-b", "loss").size(), 5u);
  latest = store.LatestMetrics("run-b");
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest["loss"].step, 5);
  EXPECT_EQ(store.Evals("run-b").size(), 2u);
  EXPECT_EQ(store.Comm("run-b").size(), 2u);
  EXPECT_EQ(store.ExpertLoad("run-b").size(), 2u);

  // After the resume the run logs its later steps again, without duplicates.
  store.LogMetrics("run-a", {MakeMetric(4, "loss", 5.5)});
  EXPECT_EQ(store.MetricHistory("run-a", "loss").size(), 4u);
  EXPECT_EQ(store.LatestMetrics("run-a")["loss"].value, 5.5);
}

// ---- run lifecycle -------------------------------------------------------------------------

TEST_F(StoreTest, SetRunStatusSetsTheTimestamps) {
  Store store(Path());
  store.UpsertRun(BareRun("run-a"));

  const std::string before_start = NowIso8601();
  store.SetRunStatus("run-a", RunStatus::kRunning);
  const std::string after_start = NowIso8601();
  RunRow run = *store.FindRun("run-a");
  EXPECT_EQ(run.status, RunStatus::kRunning);
  // Fixed-width ISO-8601 UTC strings order like the instants they name.
  EXPECT_LE(before_start, run.started_at);
  EXPECT_LE(run.started_at, after_start);
  EXPECT_EQ(run.heartbeat_at, run.started_at);
  EXPECT_EQ(run.ended_at, "");
  EXPECT_FALSE(run.exit_code.has_value());

  store.SetRunStatus("run-a", RunStatus::kFailed, "loss is NaN", 3);
  const std::string after_end = NowIso8601();
  run = *store.FindRun("run-a");
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_LE(run.started_at, run.ended_at);
  EXPECT_LE(run.ended_at, after_end);
  EXPECT_EQ(run.error, "loss is NaN");
  EXPECT_EQ(run.exit_code, std::optional<int>(3));
  const std::string first_start = run.started_at;

  // Restarting clears the end, the error and the exit code of the failed attempt.
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  store.SetRunStatus("run-a", RunStatus::kRunning);
  run = *store.FindRun("run-a");
  EXPECT_LT(first_start, run.started_at);
  EXPECT_EQ(run.ended_at, "");
  EXPECT_EQ(run.error, "");
  EXPECT_FALSE(run.exit_code.has_value());

  store.SetRunStatus("run-a", RunStatus::kFinished, "", 0);
  run = *store.FindRun("run-a");
  EXPECT_EQ(run.status, RunStatus::kFinished);
  EXPECT_NE(run.ended_at, "");
  EXPECT_EQ(run.exit_code, std::optional<int>(0));
  EXPECT_NO_THROW(ParseIso8601(run.ended_at));

  try {
    store.SetRunStatus("no-such-run", RunStatus::kKilled);
    FAIL() << "set the status of a missing run";
  } catch (const StoreError& error) {
    EXPECT_NE(std::string(error.what()).find("'no-such-run'"), std::string::npos) << error.what();
  }
}

TEST_F(StoreTest, HeartbeatSetsTimeAndPid) {
  Store store(Path());
  store.UpsertRun(BareRun("run-a"));
  const std::string before = NowIso8601();
  store.Heartbeat("run-a", 4242);
  const RunRow run = *store.FindRun("run-a");
  EXPECT_EQ(run.pid, 4242);
  EXPECT_LE(before, run.heartbeat_at);
  EXPECT_EQ(run.status, RunStatus::kPending);
  EXPECT_THROW(store.Heartbeat("no-such-run", 1), StoreError);
}

TEST_F(StoreTest, FindRunByExactIdOrUniquePrefix) {
  Store store(Path());
  for (const std::string id : {"ab", "abc123", "abc456", "abd789"}) store.UpsertRun(BareRun(id));
  EXPECT_EQ(store.FindRun("abd")->id, "abd789");
  EXPECT_EQ(store.FindRun("abc4")->id, "abc456");
  EXPECT_EQ(store.FindRun("abc123")->id, "abc123");
  // An exact id wins even when it is also a prefix of other ids.
  EXPECT_EQ(store.FindRun("ab")->id, "ab");
  EXPECT_FALSE(store.FindRun("zzz").has_value());
  EXPECT_FALSE(store.FindRun("a%").has_value());  // '%' is not a wildcard
  EXPECT_FALSE(store.FindRun("a_c").has_value());
  try {
    store.FindRun("abc");
    FAIL() << "an ambiguous prefix matched";
  } catch (const StoreError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("ambiguous"), std::string::npos) << message;
    EXPECT_NE(message.find("abc123"), std::string::npos) << message;
    EXPECT_NE(message.find("abc456"), std::string::npos) << message;
    EXPECT_EQ(message.find("abd789"), std::string::npos) << message;
  }
  EXPECT_THROW(store.FindRun(""), StoreError);
}

TEST_F(StoreTest, ListRunsFiltersBySweepAndStatus) {
  Store store(Path());
  RunRow a = BareRun("run-a");
  a.sweep_id = "s1";
  RunRow b = BareRun("run-b");
  b.sweep_id = "s1";
  b.status = RunStatus::kFinished;
  RunRow c = BareRun("run-c");
  c.sweep_id = "s2";
  store.UpsertRun(c);
  store.UpsertRun(a);
  store.UpsertRun(b);
  std::vector<RunRow> runs = store.ListRuns();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].id, "run-c");  // insertion order
  runs = store.ListRuns("s1");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id, "run-a");
  EXPECT_EQ(runs[1].id, "run-b");
  runs = store.ListRuns("", "pending");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id, "run-c");
  EXPECT_EQ(runs[1].id, "run-a");
  runs = store.ListRuns("s1", "finished");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].id, "run-b");
  EXPECT_TRUE(store.ListRuns("s3").empty());
  EXPECT_THROW(store.ListRuns("", "done"), StoreError);
}

// ---- free SQL ------------------------------------------------------------------------------

TEST_F(StoreTest, QueryReturnsColumnsAndTextValues) {
  Store store(Path());
  RunRow a = BareRun("run-a");
  a.seed = 7;
  a.exit_code = 0;
  store.UpsertRun(a);
  store.UpsertRun(BareRun("run-b"));
  store.LogMetrics("run-a", {MakeMetric(2, "loss", 0.5)});

  QueryResult result = store.Query("SELECT id, seed, exit_code AS code FROM runs ORDER BY id");
  EXPECT_EQ(result.columns, (std::vector<std::string>{"id", "seed", "code"}));
  ASSERT_EQ(result.rows.size(), 2u);
  EXPECT_EQ(result.rows[0][0], std::optional<std::string>("run-a"));
  EXPECT_EQ(result.rows[0][1], std::optional<std::string>("7"));
  EXPECT_EQ(result.rows[0][2], std::optional<std::string>("0"));
  EXPECT_EQ(result.rows[1][2], std::nullopt);

  result = store.Query("SELECT value, step FROM metrics");
  ASSERT_EQ(result.rows.size(), 1u);
  EXPECT_EQ(result.rows[0][0], std::optional<std::string>("0.5"));

  // Several read-only statements: the result is the last one's.
  result = store.Query("SELECT 1; SELECT count(*) AS n FROM runs;");
  EXPECT_EQ(result.columns, (std::vector<std::string>{"n"}));
  ASSERT_EQ(result.rows.size(), 1u);
  EXPECT_EQ(result.rows[0][0], std::optional<std::string>("2"));

  // A reading pragma is allowed.
  EXPECT_EQ(store.Query("PRAGMA user_version").rows[0][0],
            std::optional<std::string>(std::to_string(Store::kSchemaVersion)));
  EXPECT_THROW(store.Query("SELECT * FROM no_such_table"), StoreError);
  EXPECT_THROW(store.Query("  ;  "), StoreError);
}

TEST_F(StoreTest, QueryRefusesEveryStatementThatWritesAndChangesNothing) {
  const std::string path = Path();
  Store store(path);
  store.UpsertRun(BareRun("run-a"));
  store.LogMetrics("run-a", {MakeMetric(1, "loss", 1.0)});
  const std::vector<std::string> writes = {
      "INSERT INTO runs (id, method, size, seed, spec_json) VALUES ('x', 'm', 's', 1, '{}')",
      "UPDATE runs SET seed = 99",
      "DELETE FROM metrics",
      "DROP TABLE metrics",
      "CREATE TABLE sneaky (x)",
      "CREATE INDEX sneaky_index ON runs(seed)",
      "PRAGMA user_version = 99",
      "PRAGMA journal_mode = DELETE",
      "REPLACE INTO latest_metrics VALUES ('run-a', 'loss', 9, 0.0, 0.0)",
      "VACUUM",
      // Works even on a read-only connection: only the statement check stops it.
      "VACUUM INTO '" + Path("copy.db") + "'",
  };
  for (const std::string& sql : writes) {
    try {
      store.Query(sql);
      ADD_FAILURE() << "ran: " << sql;
    } catch (const StoreError& error) {
      EXPECT_EQ(std::string(error.what()), kRefusal + sql);
    }
  }
  // A write after a read is refused before the read runs, naming the writing statement.
  try {
    store.Query("SELECT * FROM runs; DELETE FROM runs");
    ADD_FAILURE() << "ran a script with a DELETE";
  } catch (const StoreError& error) {
    EXPECT_EQ(std::string(error.what()), std::string(kRefusal) + "DELETE FROM runs");
  }
  EXPECT_FALSE(fs::exists(Path("copy.db")));
  RawDb db(path);
  EXPECT_EQ(db.One("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(db.One("SELECT count(*) || ',' || max(seed) FROM runs"), "1,1");
  EXPECT_EQ(db.One("SELECT count(*) FROM metrics"), "1");
  EXPECT_EQ(db.One("SELECT step FROM latest_metrics"), "1");
  EXPECT_EQ(db.One("PRAGMA user_version"), std::to_string(Store::kSchemaVersion));
  EXPECT_EQ(db.One("SELECT count(*) FROM sqlite_master"),
            db.One("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sneaky%'"));
}

TEST_F(StoreTest, QueryLeavesNoTransactionOpen) {
  Store store(Path());
  store.UpsertRun(BareRun("run-a"));
  // A dangling BEGIN would pin the query connection to this snapshot.
  store.Query("BEGIN; SELECT count(*) FROM runs");
  store.UpsertRun(BareRun("run-b"));
  EXPECT_EQ(store.Query("SELECT count(*) FROM runs").rows[0][0], std::optional<std::string>("2"));
}

// ---- concurrency ---------------------------------------------------------------------------

constexpr int kBatches = 150;
constexpr int kRowsPerBatch = 4;

// One writer's work: its own run plus rows under its own keys in a shared run.
void WriteBatches(const std::string& path, const std::string& name) {
  Store store(path);
  RunRow run = BareRun(name);
  store.UpsertRun(run);
  for (int batch = 0; batch < kBatches; batch++) {
    std::vector<MetricRow> rows;
    for (int i = 0; i < kRowsPerBatch; i++) {
      rows.push_back(MakeMetric(batch, name + "_" + std::to_string(i), batch));
    }
    store.LogMetrics(name, rows);
    store.LogMetrics("shared", rows);
    if (batch % 10 == 0) store.Heartbeat(name, batch);
  }
}

void ExpectNoLostRows(const std::string& path, const std::vector<std::string>& names) {
  RawDb db(path);
  const int per_writer = kBatches * kRowsPerBatch;
  for (const std::string& name : names) {
    EXPECT_EQ(db.One("SELECT count(*) FROM metrics WHERE run_id = '" + name + "'"),
              std::to_string(per_writer));
  }
  EXPECT_EQ(db.One("SELECT count(*) FROM metrics WHERE run_id = 'shared'"),
            std::to_string(per_writer * names.size()));
  EXPECT_EQ(db.One("SELECT count(*) FROM latest_metrics WHERE run_id = 'shared'"),
            std::to_string(kRowsPerBatch * names.size()));
  EXPECT_EQ(db.One("SELECT count(*) FROM runs"), std::to_string(names.size()));
}

TEST_F(StoreTest, TwoThreadsWritingConcurrentlyLoseNoRows) {
  const std::string path = Path();
  { Store store(path); }
  std::vector<std::string> errors(2);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++) {
    threads.emplace_back([&, t]() {
      ready++;
      while (ready.load() < 2) std::this_thread::yield();
      try {
        WriteBatches(path, "writer" + std::to_string(t));
      } catch (const std::exception& error) {
        errors[t] = error.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
  ExpectNoLostRows(path, {"writer0", "writer1"});
}

TEST_F(StoreTest, TwoProcessesWritingConcurrentlyLoseNoRows) {
  const std::string path = Path();
  { Store store(path); }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child uses no test macros and no connection of the parent.
    int code = 0;
    try {
      WriteBatches(path, "child");
    } catch (...) {
      code = 1;
    }
    _exit(code);
  }
  WriteBatches(path, "parent");
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ExpectNoLostRows(path, {"parent", "child"});
}

TEST_F(StoreTest, SeveralStoresCreatingTheSameNewFileAtOnceAllSucceed) {
  const std::string path = Path("fresh/results.db");
  constexpr int kOpeners = 4;
  std::vector<std::string> errors(kOpeners);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kOpeners; t++) {
    threads.emplace_back([&, t]() {
      ready++;
      while (ready.load() < kOpeners) std::this_thread::yield();
      try {
        Store store(path);
        store.UpsertRun(BareRun("run-" + std::to_string(t)));
      } catch (const std::exception& error) {
        errors[t] = error.what();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::string& error : errors) EXPECT_EQ(error, "");
  RawDb db(path);
  EXPECT_EQ(db.One("SELECT count(*) FROM runs"), std::to_string(kOpeners));
  EXPECT_EQ(db.One("PRAGMA user_version"), std::to_string(Store::kSchemaVersion));
}

}  // namespace
}  // namespace moebench
