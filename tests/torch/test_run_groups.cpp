// Runs grouped into configurations, metrics aggregated over seeds (harness/sweep/run_groups.h),
// on a database built here with values whose means and t intervals are computed by hand.
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/store/store.h"
#include "harness/sweep/run_groups.h"
#include "harness/util/fs.h"

namespace moebench {
namespace {

class RunGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moebench_groups_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    RemoveTree(dir_);
    store_ = std::make_unique<Store>((dir_ / "g.db").string());
    // switch lr 0.001: seeds 1, 2, 3 with valid_bleu 20, 22, 24.
    Add("a1", "switch", 1, 0.001, RunStatus::kFinished, 20);
    Add("a2", "switch", 2, 0.001, RunStatus::kFinished, 22);
    Add("a3", "switch", 3, 0.001, RunStatus::kFinished, 24);
    // switch lr 0.002: seeds 1, 2 with 10, 14; seed 3 failed (its metric is not counted).
    Add("b1", "switch", 1, 0.002, RunStatus::kFinished, 10);
    Add("b2", "switch", 2, 0.002, RunStatus::kFinished, 14);
    Add("b3", "switch", 3, 0.002, RunStatus::kFailed, 99);
    // gshard lr 0.001: seed 1 only.
    Add("c1", "gshard", 1, 0.001, RunStatus::kFinished, 30);
  }
  void TearDown() override {
    store_.reset();
    RemoveTree(dir_);
  }

  void Add(const std::string& id, const std::string& method, int64_t seed, double lr,
           RunStatus status, double bleu) {
    nlohmann::json spec = {{"method", method}, {"seed", seed}, {"lr", lr}, {"size", "tiny"}};
    spec["knobs"] = {{"capacity_factor", "1.25"}};
    RunRow row;
    row.id = id;
    row.method = method;
    row.size = "tiny";
    row.seed = seed;
    row.spec_json = spec.dump();
    row.status = status;
    store_->UpsertRun(row);
    store_->LogMetrics(id, {{100, 1.0, "valid_bleu", bleu}});
    runs_.push_back(row);
  }

  std::vector<RunGroup> Group(const std::string& keys) {
    std::vector<RunRow> runs;
    for (const RunRow& r : runs_) runs.push_back(*store_->FindRun(r.id));
    return GroupRuns(*store_, runs, ParseGroupKeys(keys), {"valid_bleu", "absent"});
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::vector<RunRow> runs_;
};

TEST_F(RunGroupsTest, ConfigGroupsDifferOnlyInTheSeed) {
  const std::vector<RunGroup> g = Group("config");
  ASSERT_EQ(g.size(), 3u);
  // The values shown: method and size always, and lr, the one field that varies.
  EXPECT_EQ(g[0].values.at("method"), "switch");
  EXPECT_EQ(g[0].values.at("lr"), "0.001");
  EXPECT_EQ(g[1].values.at("lr"), "0.002");
  EXPECT_EQ(g[2].values.at("method"), "gshard");
  EXPECT_EQ(g[0].values.count("max_steps"), 0u);  // the same everywhere

  // 20, 22, 24: mean 22, s = 2, half-width t_{0.975,2} 2 / sqrt(3) = 4.302653 x 1.154701.
  const Summary& a = g[0].metrics.at("valid_bleu");
  EXPECT_EQ(a.n, 3);
  EXPECT_DOUBLE_EQ(*a.mean, 22.0);
  EXPECT_DOUBLE_EQ(*a.std, 2.0);
  EXPECT_NEAR(*a.ci95, 4.968275, 1e-5);
  EXPECT_TRUE(g[0].missing.empty());

  // 10, 14: mean 12, s = sqrt(8), half-width t_{0.975,1} sqrt(8) / sqrt(2) = 12.706205 x 2.
  const Summary& b = g[1].metrics.at("valid_bleu");
  EXPECT_EQ(b.n, 2);
  EXPECT_DOUBLE_EQ(*b.mean, 12.0);
  EXPECT_NEAR(*b.std, std::sqrt(8.0), 1e-12);
  EXPECT_NEAR(*b.ci95, 25.41241, 1e-4);
  EXPECT_EQ(g[1].runs.size(), 3u);
  EXPECT_EQ(g[1].finished.size(), 2u);
  EXPECT_EQ(g[1].seeds, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(g[1].missing, (std::vector<std::string>{"3 (failed)"}));

  // One seed: a mean, no interval; seeds 2 and 3 have no run at all.
  const Summary& c = g[2].metrics.at("valid_bleu");
  EXPECT_EQ(c.n, 1);
  EXPECT_DOUBLE_EQ(*c.mean, 30.0);
  EXPECT_FALSE(c.ci95.has_value());
  EXPECT_EQ(g[2].missing, (std::vector<std::string>{"2", "3"}));

  // A metric no run has: n = 0, no mean.
  EXPECT_EQ(g[0].metrics.at("absent").n, 0);
}

TEST_F(RunGroupsTest, GroupByListedKeys) {
  const std::vector<RunGroup> by_method = Group("method");
  ASSERT_EQ(by_method.size(), 2u);
  // switch: 20, 22, 24, 10, 14 (the failed run's 99 left out): mean 18.
  EXPECT_DOUBLE_EQ(*by_method[0].metrics.at("valid_bleu").mean, 18.0);
  EXPECT_EQ(by_method[0].metrics.at("valid_bleu").n, 5);
  EXPECT_EQ(by_method[0].values.size(), 1u);

  const std::vector<RunGroup> by_lr = Group("params.lr, method");
  ASSERT_EQ(by_lr.size(), 3u);
  EXPECT_EQ(by_lr[0].values.at("lr"), "0.001");
  EXPECT_EQ(by_lr[2].values.at("method"), "gshard");

  // A knob, by either spelling.
  const std::vector<RunGroup> by_knob = Group("params.knobs.capacity_factor");
  ASSERT_EQ(by_knob.size(), 1u);
  EXPECT_EQ(by_knob[0].values.at("knobs.capacity_factor"), "1.25");
  EXPECT_EQ(Group("params.capacity_factor").size(), 1u);
}

TEST_F(RunGroupsTest, UnknownGroupKeysAreErrors) {
  auto error = [](const std::string& keys) {
    try {
      ParseGroupKeys(keys);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error("colour").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(error("params.colour").find("not a run-spec field nor a knob"), std::string::npos);
  EXPECT_NE(error("metrics.valid_bleu").find("is a metric"), std::string::npos);
  EXPECT_NE(error("method,,size").find("an empty key"), std::string::npos);
  EXPECT_EQ(ParseGroupKeys("method, params.lr, params.knobs.p"),
            (std::vector<std::string>{"method", "lr", "knobs.p"}));
}

TEST_F(RunGroupsTest, FlatSpecFillsDefaultsAndPrefixesKnobs) {
  const auto flat = FlatSpec(*store_->FindRun("a1"));
  EXPECT_EQ(flat.at("lr"), "0.001");
  EXPECT_EQ(flat.at("knobs.capacity_factor"), "1.25");
  EXPECT_EQ(flat.at("max_steps"), "200");  // the default, left out of the stored spec
  EXPECT_EQ(flat.at("seed"), "1");
}

}  // namespace
}  // namespace moebench
