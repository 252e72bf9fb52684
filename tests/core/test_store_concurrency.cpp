// The results store under concurrent writers: threads, processes, and stores creating one file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>
#include "tests/core/store_test_util.h"

namespace moebench {
namespace {

using namespace store_test;  // NOLINT(build/namespaces): the shared fixture and builders

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
