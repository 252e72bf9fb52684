// The results store (harness/store): round trips, logging, run bookkeeping and read-only
// queries. Schema and migrations: test_store_schema.cpp; concurrent writers:
// test_store_concurrency.cpp; timestamps: test_time.cpp.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "harness/store/schema.h"
#include "harness/store/sqlite_util.h"
#include "harness/store/store.h"
#include "harness/util/time.h"
#include "tests/core/store_test_util.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;
using namespace store_test;  // NOLINT(build/namespaces): the shared fixture and builders

const char* const kRefusal =
    "query: the database is opened read-only; refusing a statement that writes: ";

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

}  // namespace
}  // namespace moebench
