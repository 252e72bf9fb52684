// `--where` / `--sort`: the filter language over columns, params and latest metrics.
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/store/store.h"
#include "harness/sweep/run_filter.h"
#include "harness/util/fs.h"

namespace moebench {
namespace {

class SweepFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("moebench_filter_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    RemoveTree(dir_);
    store_ = std::make_unique<Store>((dir_ / "f.db").string());
    // id, method, seed, status, lr, knob p (text, as knobs are stored), valid_bleu (or none)
    Add("r1", "switch", 1, RunStatus::kFinished, 0.001, "", 21.5);
    Add("r2", "switch", 2, RunStatus::kFinished, 0.002, "", 18.0);
    Add("r3", "gating_dropout", 1, RunStatus::kFinished, 0.001, "0.3", 25.0);
    Add("r4", "gating_dropout", 2, RunStatus::kFailed, 0.001, "0.2", -1);
    Add("r5", "thor", 1, RunStatus::kPending, 0.001, "", -1);
  }
  void TearDown() override {
    store_.reset();
    RemoveTree(dir_);
  }

  void Add(const std::string& id, const std::string& method, int64_t seed, RunStatus status,
           double lr, const std::string& p, double bleu) {
    nlohmann::json spec = {{"method", method}, {"seed", seed}, {"lr", lr}, {"size", "tiny"}};
    spec["knobs"] = nlohmann::json::object();
    if (!p.empty()) spec["knobs"]["p"] = p;
    RunRow row;
    row.id = id;
    row.sweep_id = seed == 1 ? "sw-a" : "sw-b";
    row.method = method;
    row.size = "tiny";
    row.seed = seed;
    row.spec_json = spec.dump(2);
    row.status = status;
    store_->UpsertRun(row);
    if (bleu >= 0) {
      store_->LogMetrics(id, {{10, 1.0, "valid_bleu", bleu - 5}, {20, 2.0, "valid_bleu", bleu}});
    }
  }

  std::string Ids(const std::string& where, const std::string& sort = "") {
    std::string out;
    for (const std::string& id : SelectRunIds(*store_, "", "", where, sort)) {
      out += (out.empty() ? "" : ",") + id;
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(SweepFilterTest, Columns) {
  EXPECT_EQ(Ids("method = 'switch'"), "r1,r2");
  EXPECT_EQ(Ids("method != 'switch'"), "r3,r4,r5");
  EXPECT_EQ(Ids("seed >= 2"), "r2,r4");
  EXPECT_EQ(Ids("status = \"failed\""), "r4");
  EXPECT_EQ(Ids("id = 'r3'"), "r3");
  EXPECT_EQ(Ids("sweep = 'sw-b'"), "r2,r4");
  EXPECT_EQ(Ids("method LIKE 'gat%'"), "r3,r4");
  EXPECT_EQ(Ids("method not like 'gat%'"), "r1,r2,r5");
  EXPECT_EQ(Ids("method in ('thor', 'switch')"), "r1,r2,r5");
}

TEST_F(SweepFilterTest, LatestMetricsCompareNumerically) {
  // The latest valid_bleu (step 20), not the earlier one: r1 21.5, r2 18, r3 25.
  EXPECT_EQ(Ids("metrics.valid_bleu > 20"), "r1,r3");
  EXPECT_EQ(Ids("metrics.valid_bleu <= 18"), "r2");
  // Runs without the metric never match a comparison, but do match IS NULL.
  EXPECT_EQ(Ids("metrics.valid_bleu IS NULL"), "r4,r5");
  EXPECT_EQ(Ids("metrics.valid_bleu is not null"), "r1,r2,r3");
}

TEST_F(SweepFilterTest, ParamsAsTextOrNumber) {
  EXPECT_EQ(Ids("params.p = '0.3'"), "r3");  // the example: text equality
  EXPECT_EQ(Ids("params.p = 0.3"), "r3");    // a number literal reads "0.3" as 0.3
  EXPECT_EQ(Ids("params.p < 0.25"), "r4");
  EXPECT_EQ(Ids("params.knobs.p > 0.1"), "r3,r4");
  EXPECT_EQ(Ids("params.lr = 0.002"), "r2");    // a run-spec field (a JSON number)
  EXPECT_EQ(Ids("params.lr = '0.002'"), "r2");  // and as text
  EXPECT_EQ(Ids("params.method = 'thor'"), "r5");
}

TEST_F(SweepFilterTest, AndOrNotAndParentheses) {
  EXPECT_EQ(Ids("method = 'switch' and metrics.valid_bleu > 20 or method = 'thor'"), "r1,r5");
  EXPECT_EQ(Ids("method = 'switch' and (metrics.valid_bleu > 20 or seed = 2)"), "r1,r2");
  EXPECT_EQ(Ids("not method = 'switch' AND seed = 1"), "r3,r5");
  EXPECT_EQ(Ids("(((seed = 1)))"), "r1,r3,r5");
  EXPECT_EQ(Ids("method = 'switch' and metrics.valid_bleu > 20 and params.lr = 0.001"), "r1");
}

TEST_F(SweepFilterTest, Sort) {
  EXPECT_EQ(Ids("", "metrics.valid_bleu desc"), "r3,r1,r2,r4,r5");  // missing values last
  EXPECT_EQ(Ids("", "metrics.valid_bleu"), "r2,r1,r3,r4,r5");
  EXPECT_EQ(Ids("", "method, seed desc"), "r4,r3,r2,r1,r5");
  EXPECT_EQ(Ids("status = 'finished'", "params.lr desc, id"), "r2,r1,r3");
}

TEST_F(SweepFilterTest, LiteralsNeverBecomeSql) {
  EXPECT_EQ(Ids("method = 'x''; DROP TABLE runs; --'"), "");
  EXPECT_EQ(Ids("metrics.`valid_bleu` > 0"), "r1,r2,r3");
  EXPECT_EQ(Ids("method = 'switch'"), "r1,r2");  // the table is still there
  const SqlFragment f = ParseRunFilter("method = 'a''b' and metrics.x > 3");
  EXPECT_EQ(f.sql.find("a'b"), std::string::npos);
  EXPECT_EQ(f.sql.find("'x'"), std::string::npos);
  ASSERT_EQ(f.params.size(), 3u);  // the text, the metric key, the number
  EXPECT_EQ(std::get<std::string>(f.params[0]), "a'b");
}

TEST_F(SweepFilterTest, ErrorsSayWhatAndWhere) {
  auto error = [](const std::string& where) {
    try {
      ParseRunFilter(where);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(error("colour = 'red'").find("unknown key 'colour'"), std::string::npos);
  EXPECT_NE(error("method = ").find("expected a literal"), std::string::npos);
  EXPECT_NE(error("method = 'x").find("unterminated string"), std::string::npos);
  EXPECT_NE(error("method 'x'").find("expected a comparison"), std::string::npos);
  EXPECT_NE(error("(method = 'x'").find("expected ')'"), std::string::npos);
  EXPECT_NE(error("method = 'x' seed = 1").find("at position 14"), std::string::npos);
  EXPECT_NE(error("seed LIKE 3").find("'pattern' after LIKE"), std::string::npos);
  EXPECT_NE(error("").find("empty expression"), std::string::npos);
  EXPECT_NE(error("params.a.b.c = 1").find("expected params.<field> or params.<knob>"),
            std::string::npos);
}

// ---- the grammar of issue 21: ILIKE, case-sensitive LIKE, precedence, IN, bounds ----------

std::string FilterError(const std::string& where) {
  try {
    ParseRunFilter(where);
  } catch (const std::invalid_argument& e) {
    return std::string(e.what());
  }
  return std::string("(no error)");
}

TEST_F(SweepFilterTest, LikeIsCaseSensitiveAndIlikeIsNot) {
  EXPECT_EQ(Ids("method LIKE 'GAT%'"), "");
  EXPECT_EQ(Ids("method ILIKE 'GAT%'"), "r3,r4");
  EXPECT_EQ(Ids("method ilike 'S_ITCH'"), "r1,r2");
  EXPECT_EQ(Ids("method NOT ILIKE '%DROPOUT'"), "r1,r2,r5");
  EXPECT_EQ(Ids("method LIKE 'th_r'"), "r5");
  // GLOB's own wildcards in a LIKE pattern stand for themselves.
  EXPECT_EQ(Ids("method LIKE 'sw*'"), "");
  EXPECT_EQ(Ids("method LIKE '[s]witch'"), "");
  // A run without the value matches neither LIKE nor NOT LIKE.
  EXPECT_EQ(Ids("params.p LIKE '%'"), "r3,r4");
  EXPECT_EQ(Ids("params.p NOT LIKE 'x%'"), "r3,r4");
}

TEST_F(SweepFilterTest, AndBindsTighterThanOr) {
  // seed = 2 OR (thor AND seed = 2): r2, r4.
  EXPECT_EQ(Ids("seed = 2 or method = 'thor' and seed = 2"), "r2,r4");
  EXPECT_EQ(Ids("(seed = 2 or method = 'thor') and seed = 1"), "r5");
  EXPECT_EQ(Ids("not (method = 'switch' or method = 'thor')"), "r3,r4");
  EXPECT_EQ(Ids("method = 'thor' OR method = 'switch' AND seed = 2"), "r2,r5");
}

TEST_F(SweepFilterTest, InLists) {
  EXPECT_EQ(Ids("seed in (2)"), "r2,r4");
  EXPECT_EQ(Ids("method not in ('switch', 'thor')"), "r3,r4");
  EXPECT_EQ(Ids("params.p in (0.3, '0.2')"), "r3,r4");
  EXPECT_EQ(Ids("metrics.valid_bleu in (21.5, 25)"), "r1,r3");
  EXPECT_NE(FilterError("seed in 1, 2").find("'(' after IN"), std::string::npos);
  EXPECT_NE(FilterError("seed in (1 2)").find("at position 12"), std::string::npos);
}

TEST_F(SweepFilterTest, InjectionAttemptsStayLiterals) {
  EXPECT_EQ(Ids("method LIKE '%''; DROP TABLE runs; --'"), "");
  EXPECT_EQ(Ids("method IN ('x'') OR 1=1 --', 'y')"), "");
  EXPECT_EQ(Ids("method ILIKE '\" OR 1=1'"), "");
  EXPECT_EQ(Ids("metrics.`valid_bleu) OR (1=1` > 0"), "");
  EXPECT_EQ(Ids("method = 'switch'"), "r1,r2");  // the table is still there
  const SqlFragment f = ParseRunFilter("method ILIKE 'a''b' or method LIKE 'c%'");
  EXPECT_EQ(f.sql.find("a'b"), std::string::npos);
  EXPECT_EQ(f.sql.find("c*"), std::string::npos);
}

TEST_F(SweepFilterTest, NestingIsBounded) {
  auto nested = [](int depth) {
    return std::string(depth, '(') + "seed = 1" + std::string(depth, ')');
  };
  EXPECT_EQ(Ids(nested(32)), "r1,r3,r5");
  const std::string deep = FilterError(nested(33));
  EXPECT_NE(deep.find("nested deeper than 32 levels at position 33"), std::string::npos) << deep;
  // The crash: 20,000 parentheses (and NOTs) are an error, not a stack overflow.
  EXPECT_NE(FilterError(nested(20000)).find("nested deeper than 32"), std::string::npos);
  std::string nots;
  for (int i = 0; i < 20000; i++) nots += "not ";
  EXPECT_NE(FilterError(nots + "seed = 1").find("nested deeper than 32"), std::string::npos);
  // And SQLite's expression depth is never reached: at most 256 comparisons.
  std::string many = "seed = 1";
  for (int i = 0; i < 255; i++) many += " or seed = 1";
  EXPECT_EQ(Ids(many), "r1,r3,r5");
  EXPECT_NE(FilterError(many + " or seed = 1").find("more than 256 comparisons"),
            std::string::npos);
}

TEST_F(SweepFilterTest, UnknownParamsKeyIsAnError) {
  EXPECT_NE(FilterError("params.colour = 1").find("unknown key 'params.colour'"),
            std::string::npos);
  EXPECT_NE(FilterError("params.knobs.colour = 1").find("neither a run-spec field nor a knob"),
            std::string::npos);
  EXPECT_EQ(FilterError("params.capacity_factor = 1"), "(no error)");  // switch's knob
  EXPECT_EQ(FilterError("params.max_steps > 1"), "(no error)");        // a field
}

}  // namespace
}  // namespace moebench
