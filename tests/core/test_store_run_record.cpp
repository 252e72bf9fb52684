// One writer's run record (Store::DatabaseId, ClaimRunForWriter, FinishRun): a database has
// its own identity, a run held by another live writer is not taken, and a run is recorded
// finished only with its results stored.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "harness/store/store.h"
#include "tests/core/store_test_util.h"

namespace moebench {
namespace {

using namespace store_test;  // NOLINT(build/namespaces): the shared fixture and builders

TEST_F(StoreTest, EachDatabaseHasItsOwnIdWhichACopyKeeps) {
  std::string a, b;
  {
    Store sa(Path("a.db"));
    Store sb(Path("b.db"));
    a = sa.DatabaseId();
    b = sb.DatabaseId();
  }
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_NE(a, b);
  EXPECT_EQ(Store(Path("a.db")).DatabaseId(), a);  // reopening keeps it
  fs::copy_file(Path("a.db"), Path("copy.db"));
  EXPECT_EQ(Store(Path("copy.db")).DatabaseId(), a);  // a copy is the same database
}

TEST_F(StoreTest, ClaimForWriterInsertsTakesOrRefuses) {
  Store store(Path());
  RunRow run = BareRun("r1");
  run.pid = 100;
  auto never_busy = [](const RunRow&) { return std::string(); };
  // Absent: inserted as running.
  Store::WriterClaim first = store.ClaimRunForWriter(run, never_busy);
  EXPECT_EQ(first.outcome, Store::ClaimOutcome::kClaimed);
  EXPECT_FALSE(first.before.has_value());
  EXPECT_EQ(store.FindRun("r1")->status, RunStatus::kRunning);
  EXPECT_FALSE(store.FindRun("r1")->started_at.empty());
  // Busy: nothing changes, the reason comes back.
  RunRow other = run;
  other.pid = 200;
  Store::WriterClaim busy = store.ClaimRunForWriter(other, [](const RunRow& stored) {
    return stored.pid == 100 ? std::string("held by 100") : std::string();
  });
  EXPECT_EQ(busy.outcome, Store::ClaimOutcome::kBusy);
  EXPECT_EQ(busy.busy, "held by 100");
  EXPECT_EQ(store.FindRun("r1")->pid, 100);
  // Not busy: taken over, and a claim without a sweep keeps the stored one.
  store.SetRunSweep("r1", "s1");
  Store::WriterClaim taken = store.ClaimRunForWriter(other, never_busy);
  EXPECT_EQ(taken.outcome, Store::ClaimOutcome::kClaimed);
  EXPECT_EQ(store.FindRun("r1")->pid, 200);
  EXPECT_EQ(store.FindRun("r1")->sweep_id, "s1");
  EXPECT_EQ(taken.row.sweep_id, "s1");
  // Finished: left alone whatever `busy` says.
  store.SetRunStatus("r1", RunStatus::kFinished, "", 0);
  Store::WriterClaim done = store.ClaimRunForWriter(run, never_busy);
  EXPECT_EQ(done.outcome, Store::ClaimOutcome::kFinished);
  EXPECT_EQ(store.FindRun("r1")->status, RunStatus::kFinished);
  EXPECT_EQ(store.FindRun("r1")->pid, 200);
}

TEST_F(StoreTest, FinishRunRefusesIncompleteResultsAndNamesWhatIsMissing) {
  Store store(Path());
  store.UpsertRun(BareRun("r1"));
  store.SetRunStatus("r1", RunStatus::kRunning);
  Store::FinishCheck check;
  check.final_step = 20;
  check.metric_keys = {"train_loss", "valid_loss"};
  check.eval_splits = {"valid"};
  check.comm_rows = true;
  // A train_loss at another step does not count.
  store.LogMetrics("r1", {MakeMetric(10, "train_loss", 1.0)});
  try {
    store.FinishRun("r1", check);
    FAIL() << "finished with nothing stored";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("metric train_loss at step 20"), std::string::npos) << what;
    EXPECT_NE(what.find("metric valid_loss at step 20"), std::string::npos) << what;
    EXPECT_NE(what.find("valid evaluation at step 20"), std::string::npos) << what;
    EXPECT_NE(what.find("communication rows"), std::string::npos) << what;
  }
  EXPECT_EQ(store.FindRun("r1")->status, RunStatus::kRunning);
  store.LogMetrics("r1", {MakeMetric(20, "train_loss", 1.0), MakeMetric(20, "valid_loss", 2.0)});
  store.LogEvals({MakeEval("r1", 20, "all", 0)});
  EXPECT_THROW(store.FinishRun("r1", check), StoreError);  // still no comm rows
  CommRow comm;
  comm.run_id = "r1";
  comm.step = 20;
  comm.phase = "fwd";
  store.LogComm({comm});
  store.FinishRun("r1", check);
  const RunRow row = *store.FindRun("r1");
  EXPECT_EQ(row.status, RunStatus::kFinished);
  EXPECT_EQ(row.exit_code, std::optional<int>(0));
  EXPECT_FALSE(row.ended_at.empty());
}

}  // namespace
}  // namespace moebench
