// `moebench best --metric KEY [--max | --min] [--group-by KEYS]`: the best finished run (or,
// with --group-by, the best configuration by its mean over seeds), with its spec, as optuna's
// `best-trial` does. Every run tied with the best value is listed. Read-only.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/cli_common.h"
#include "harness/cli/table_output.h"
#include "harness/store/store.h"
#include "harness/sweep/run_filter.h"
#include "harness/sweep/run_groups.h"

namespace moebench {
namespace {

struct BestArgs {
  std::string db = kDefaultDb, metric, sweep, where, group_by, format = "table";
  bool max = false, min = false;
  int top = 1;
};

// Without --max or --min: lower is better for losses, perplexities, times, bytes and
// imbalance; higher for everything else (BLEU, chrF, throughput).
bool LowerIsBetter(const std::string& key) {
  for (const char* part : {"loss", "nll", "ppl", "_ms", "seconds", "bytes", "load_cv", "dropped",
                           "load_max_mean", "unused"}) {
    if (key.find(part) != std::string::npos) return true;
  }
  return false;
}

struct Candidate {
  double value = 0;
  std::vector<Cell> cells;
  nlohmann::json spec;
};

void Best(const BestArgs& a) {
  CheckTableFormat(a.format);
  if (a.top < 1) throw std::invalid_argument("--top must be >= 1, got " + std::to_string(a.top));
  const bool lower = a.min || (!a.max && LowerIsBetter(a.metric));
  Store store(a.db, Store::Mode::kReadOnly);
  std::string sweep_id;
  if (!a.sweep.empty()) {
    auto s = store.GetSweep(a.sweep);
    if (!s) throw std::invalid_argument("no sweep named or with id '" + a.sweep + "' in " + a.db);
    sweep_id = s->id;
  }
  std::vector<RunRow> runs;
  for (const std::string& id : SelectRunIds(store, sweep_id, "", a.where, "")) {
    runs.push_back(*store.FindRun(id));
  }
  std::vector<std::string> columns;
  std::vector<Candidate> candidates;
  if (a.group_by.empty()) {
    columns = {"rank", "run", "method", "size", "seed", a.metric, "step"};
    for (const RunRow& r : runs) {
      if (r.status != RunStatus::kFinished) continue;
      const auto latest = store.LatestMetrics(r.id);
      auto it = latest.find(a.metric);
      if (it == latest.end() || std::isnan(it->second.value)) continue;
      Candidate c;
      c.value = it->second.value;
      c.cells = {Cell::Text(r.id),      Cell::Text(r.method),  Cell::Text(r.size),
                 Cell::Integer(r.seed), Cell::Number(c.value), Cell::Integer(it->second.step)};
      c.spec = nlohmann::json::parse(r.spec_json, nullptr, false);
      candidates.push_back(std::move(c));
    }
  } else {
    const std::vector<RunGroup> groups =
        GroupRuns(store, runs, ParseGroupKeys(a.group_by), {a.metric});
    std::vector<std::string> key_columns;
    for (const RunGroup& g : groups) {
      for (const auto& [k, v] : g.values) {
        if (std::find(key_columns.begin(), key_columns.end(), k) == key_columns.end()) {
          key_columns.push_back(k);
        }
      }
    }
    std::sort(key_columns.begin(), key_columns.end());
    columns = {"rank"};
    columns.insert(columns.end(), key_columns.begin(), key_columns.end());
    for (const std::string& c : {std::string("runs"), std::string("seeds"), std::string("missing"),
                                 a.metric + ".mean", a.metric + ".ci95", a.metric + ".n"}) {
      columns.push_back(c);
    }
    for (const RunGroup& g : groups) {
      const Summary& s = g.metrics.at(a.metric);
      if (!s.mean) continue;
      Candidate c;
      c.value = *s.mean;
      for (const std::string& k : key_columns) {
        auto it = g.values.find(k);
        c.cells.push_back(it == g.values.end() ? Cell::Null() : Cell::Text(it->second));
      }
      std::string seeds, missing;
      for (int64_t seed : g.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(seed);
      for (const std::string& m : g.missing) missing += (missing.empty() ? "" : ",") + m;
      c.cells.push_back(Cell::Integer(static_cast<int64_t>(g.finished.size())));
      c.cells.push_back(Cell::Text(seeds));
      c.cells.push_back(Cell::Text(missing));
      c.cells.push_back(Cell::Number(s.mean));
      c.cells.push_back(Cell::Number(s.ci95));
      c.cells.push_back(Cell::Integer(s.n));
      // The configuration: the spec values every finished run of the group shares.
      nlohmann::json spec = nlohmann::json::object();
      for (const auto& [k, v] : FlatSpec(g.finished.front())) {
        bool shared = true;
        for (const RunRow& r : g.finished) {
          auto flat = FlatSpec(r);
          shared = shared && flat.count(k) && flat[k] == v;
        }
        if (shared) spec[k] = v;
      }
      c.spec = spec;
      candidates.push_back(std::move(c));
    }
  }
  if (candidates.empty()) {
    throw std::invalid_argument("best: no finished run " +
                                std::string(a.group_by.empty() ? "" : "group ") + "has metric '" +
                                a.metric + "' among the " + std::to_string(runs.size()) +
                                " runs selected");
  }
  // Stable: among equal values the earlier run (or group) comes first.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [lower](const Candidate& x, const Candidate& y) {
                     return lower ? x.value < y.value : x.value > y.value;
                   });
  std::vector<std::vector<Cell>> rows;
  int rank = 0;
  double last = std::nan("");
  for (size_t i = 0; i < candidates.size(); i++) {
    if (i == 0 || candidates[i].value != last) {
      rank = static_cast<int>(i) + 1;
      if (rank > a.top) break;
      last = candidates[i].value;
    }
    std::vector<Cell> row = {Cell::Integer(rank)};
    row.insert(row.end(), candidates[i].cells.begin(), candidates[i].cells.end());
    rows.push_back(row);
  }
  const std::string direction = lower ? "lower is better" : "higher is better";
  if (a.format == "json") {
    nlohmann::json out = {{"metric", a.metric},
                          {"direction", lower ? "min" : "max"},
                          {"candidates", candidates.size()},
                          {"spec", candidates.front().spec}};
    std::ostringstream table;
    PrintTable(columns, rows, "json", table);
    out["best"] = nlohmann::json::parse(table.str());
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (a.format == "table") {
    std::cout << "best " << (a.group_by.empty() ? "run" : "group (by its mean over seeds)")
              << " by " << a.metric << " (" << direction << "), of " << candidates.size()
              << (a.group_by.empty() ? " finished runs" : " groups") << " that have it"
              << (rows.size() > 1 && rows[1][0].number == 1 ? "; tied runs share rank 1" : "")
              << "\n";
  }
  PrintTable(columns, rows, a.format, std::cout);
  if (a.format == "table") {
    std::cout << "\nspec" << (a.group_by.empty() ? "" : " (shared by the group's runs)") << "\n"
              << candidates.front().spec.dump(2) << "\n";
  }
}

}  // namespace

void RegisterBestCommand(CLI::App& app) {
  auto a = std::make_shared<BestArgs>();
  CLI::App* cmd = app.add_subcommand(
      "best",
      "the best finished run (or configuration, with --group-by) by a metric, with its spec");
  AddDbOption(*cmd, a->db);
  cmd->add_option("--metric", a->metric, "the metric key (its latest value), e.g. valid_bleu")
      ->required();
  auto* mx = cmd->add_flag("--max", a->max, "higher is better");
  auto* mn = cmd->add_flag("--min", a->min, "lower is better");
  mx->excludes(mn);
  cmd->add_option("--group-by", a->group_by,
                  "rank groups by their mean over seeds: KEY,... or config (see runs --group-by)");
  cmd->add_option("--sweep", a->sweep, "only runs of this sweep (name or id)");
  cmd->add_option("--where", a->where, "filter (the runs --where language)");
  cmd->add_option("--top", a->top, "the best N ranks (ties share a rank)")->capture_default_str();
  cmd->add_option("--format", a->format, kTableFormats)->capture_default_str();
  cmd->footer(
      "Without --max or --min, lower is better for keys naming a loss, nll, ppl, _ms, seconds, "
      "bytes, load_cv, dropped, load_max_mean or unused; higher for the rest (BLEU, chrF, "
      "tokens_per_s). Only finished runs count.");
  cmd->callback([a]() { Best(*a); });
}

}  // namespace moebench
