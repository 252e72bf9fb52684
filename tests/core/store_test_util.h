// Shared by the results-store tests (test_store*.cpp): a raw SQLite view of the file, a
// fixture with a fresh folder per test, and row builders.
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/util/fs.h"

namespace moebench::store_test {

namespace fs = std::filesystem;

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
    RemoveTree(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { RemoveTree(dir_); }
  std::string Path(const std::string& name = "results.db") const { return (dir_ / name).string(); }

  fs::path dir_;
};

inline RunRow FullRun(const std::string& id) {
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
inline RunRow BareRun(const std::string& id) {
  RunRow run;
  run.id = id;
  run.method = "gshard";
  run.size = "small";
  run.seed = 1;
  run.spec_json = "{}";
  return run;
}

inline void ExpectRunsEqual(const RunRow& a, const RunRow& b) {
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

inline MetricRow MakeMetric(int64_t step, const std::string& key, double value) {
  MetricRow row;
  row.step = step;
  row.wall_s = 0.25 * static_cast<double>(step);
  row.key = key;
  row.value = value;
  return row;
}

inline EvalRow MakeEval(const std::string& run_id, int64_t step, const std::string& lang, int k) {
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

inline CommRow MakeComm(const std::string& run_id, int64_t step, int layer,
                        const std::string& phase) {
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

inline ExpertLoadRow MakeLoad(const std::string& run_id, int64_t step, int layer, int expert) {
  ExpertLoadRow row;
  row.run_id = run_id;
  row.step = step;
  row.layer = layer;
  row.expert = expert;
  row.tokens = 100 + expert;
  row.dropped = expert;
  return row;
}

inline std::vector<std::string> ColumnsOf(RawDb& db, const std::string& table) {
  return db.Column("SELECT name FROM pragma_table_info('" + table + "') ORDER BY cid");
}

}  // namespace moebench::store_test
