// The store's sweep helpers: claiming a run, requeueing an abandoned one, merging databases.
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "harness/store/store.h"
#include "harness/util/fs.h"

namespace moebench {
namespace {

class StoreSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moebench_store_sweep_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    RemoveTree(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { RemoveTree(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  static RunRow Run(const std::string& id, RunStatus status = RunStatus::kPending) {
    RunRow r;
    r.id = id;
    r.method = "switch";
    r.size = "tiny";
    r.seed = 1;
    r.spec_json = "{}";
    r.status = status;
    return r;
  }

  std::filesystem::path dir_;
};

TEST_F(StoreSweepTest, InsertIfAbsentNeverOverwrites) {
  Store s(Path("a.db"));
  RunRow r = Run("r1", RunStatus::kFinished);
  s.UpsertRun(r);
  EXPECT_FALSE(s.InsertRunIfAbsent(Run("r1")));
  EXPECT_EQ(s.FindRun("r1")->status, RunStatus::kFinished);
  EXPECT_TRUE(s.InsertRunIfAbsent(Run("r2")));
  EXPECT_EQ(s.FindRun("r2")->status, RunStatus::kPending);
}

TEST_F(StoreSweepTest, OnlyOneClaimOfAPendingRunWins) {
  Store a(Path("a.db"));
  Store b(Path("a.db"));  // a second process's connection
  a.InsertRunIfAbsent(Run("r1"));
  EXPECT_TRUE(a.ClaimRun("r1", 111, "h"));
  EXPECT_FALSE(b.ClaimRun("r1", 222, "h"));
  const RunRow r = *b.FindRun("r1");
  EXPECT_EQ(r.status, RunStatus::kRunning);
  EXPECT_EQ(r.pid, 111);
  EXPECT_EQ(r.host, "h");
  EXPECT_FALSE(r.heartbeat_at.empty());
}

TEST_F(StoreSweepTest, RequeueOnlyTouchesTheRunStillHeldByThatPid) {
  Store s(Path("a.db"));
  s.InsertRunIfAbsent(Run("r1"));
  s.ClaimRun("r1", 111, "h");
  EXPECT_FALSE(s.RequeueRun("r1", 999, "gone"));  // another process holds it now
  EXPECT_TRUE(s.RequeueRun("r1", 111, "gone"));
  const RunRow r = *s.FindRun("r1");
  EXPECT_EQ(r.status, RunStatus::kPending);
  EXPECT_EQ(r.error, "gone");
  EXPECT_FALSE(s.RequeueRun("r1", 0, "again"));  // not running any more
  s.SetRunStatus("r1", RunStatus::kFinished);
  EXPECT_FALSE(s.ClaimRun("r1", 1, "h"));
}

TEST_F(StoreSweepTest, QueryWithParamsBindsAndRefusesWrites) {
  Store s(Path("a.db"));
  s.InsertRunIfAbsent(Run("r1"));
  s.InsertRunIfAbsent(Run("r'2"));
  QueryResult q = s.QueryWithParams("SELECT id FROM runs WHERE id = ?", {std::string("r'2")});
  ASSERT_EQ(q.rows.size(), 1u);
  EXPECT_EQ(*q.rows[0][0], "r'2");
  EXPECT_THROW(s.QueryWithParams("DELETE FROM runs WHERE id = ?", {std::string("r1")}), StoreError);
  EXPECT_TRUE(s.FindRun("r1").has_value());
}

// A run database as a run process leaves it: the run row and some per-step rows.
void WriteRun(Store& s, const std::string& id, RunStatus status, int64_t last_step) {
  RunRow r;
  r.id = id;
  r.method = "switch";
  r.size = "tiny";
  r.seed = 1;
  r.spec_json = "{}";
  r.status = status;
  if (IsTerminal(status))
    r.ended_at = "2024-01-01T00:00:0" + std::to_string(last_step % 10) + ".000Z";
  s.UpsertRun(r);
  std::vector<MetricRow> m;
  for (int64_t step = 10; step <= last_step; step += 10)
    m.push_back({step, 1.0, "train_loss", 1.0});
  s.LogMetrics(id, m);
  EvalRow e;
  e.run_id = id;
  e.step = last_step;
  e.split = "valid";
  e.lang = "all";
  e.signature = "sig";
  s.LogEvals({e});
  s.LogComm({CommRow{id, last_step, 1, "fwd"}});
  s.LogExpertLoad({ExpertLoadRow{id, last_step, 1, 0, 5, 0}});
}

int64_t Count(Store& s, const std::string& sql) {
  return std::stoll(*s.Query(sql).rows.at(0).at(0));
}

TEST_F(StoreSweepTest, MergeCopiesRunsWithAllTheirRowsAndNeverDuplicates) {
  {
    Store a(Path("a.db"));
    WriteRun(a, "ra", RunStatus::kFinished, 30);
    SweepRow sw;
    sw.id = "sw-1";
    sw.name = "sw";
    sw.created_at = "2024-01-01T00:00:00.000Z";
    a.UpsertSweep(sw);
    Store b(Path("b.db"));
    WriteRun(b, "rb", RunStatus::kFinished, 20);
  }
  Store target(Path("t.db"));
  Store::MergeStats m1 = target.MergeFrom(Path("a.db"));
  EXPECT_EQ(m1.runs_taken, 1);
  EXPECT_EQ(m1.sweeps, 1);
  target.MergeFrom(Path("b.db"));
  // Twice more: nothing changes.
  Store::MergeStats m2 = target.MergeFrom(Path("a.db"));
  EXPECT_EQ(m2.runs_taken, 0);
  EXPECT_EQ(m2.runs_kept, 1);
  EXPECT_EQ(m2.sweeps, 0);
  target.MergeFrom(Path("b.db"));
  EXPECT_EQ(Count(target, "SELECT count(*) FROM runs"), 2);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM metrics WHERE run_id = 'ra'"), 3);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM metrics WHERE run_id = 'rb'"), 2);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM latest_metrics"), 2);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM evals"), 2);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM comm"), 2);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM expert_load"), 2);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM sweeps"), 1);
}

TEST_F(StoreSweepTest, MergeKeepsTheCopyThatIsFurtherAlong) {
  {
    Store partial(Path("partial.db"));
    WriteRun(partial, "r", RunStatus::kRunning, 20);
    Store done(Path("done.db"));
    WriteRun(done, "r", RunStatus::kFinished, 40);
  }
  Store target(Path("t.db"));
  target.MergeFrom(Path("partial.db"));
  EXPECT_EQ(Count(target, "SELECT count(*) FROM metrics"), 2);
  target.MergeFrom(Path("done.db"));  // finished replaces running, rows and all
  EXPECT_EQ(target.FindRun("r")->status, RunStatus::kFinished);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM metrics"), 4);
  EXPECT_EQ(Count(target, "SELECT max(step) FROM latest_metrics"), 40);
  target.MergeFrom(Path("partial.db"));  // an older copy never replaces a finished one
  EXPECT_EQ(target.FindRun("r")->status, RunStatus::kFinished);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM metrics"), 4);
  EXPECT_EQ(Count(target, "SELECT count(*) FROM evals"), 1);
}

TEST_F(StoreSweepTest, MergeKeepsTheSweepTagWhenTheCopyHasNone) {
  {
    Store run_db(Path("run.db"));
    WriteRun(run_db, "r", RunStatus::kFinished, 10);  // written by `train`: no sweep tag
  }
  Store target(Path("t.db"));
  RunRow pending = Run("r");
  pending.sweep_id = "sw-1";
  target.UpsertRun(pending);
  target.MergeFrom(Path("run.db"));
  EXPECT_EQ(target.FindRun("r")->status, RunStatus::kFinished);
  EXPECT_EQ(target.FindRun("r")->sweep_id, "sw-1");
}

TEST_F(StoreSweepTest, MergeOfAMissingFileNamesIt) {
  Store target(Path("t.db"));
  try {
    target.MergeFrom(Path("nope.db"));
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.db"), std::string::npos);
  }
}

}  // namespace
}  // namespace moebench
