// `moebench runs [--group-by KEYS --agg ...]`, `moebench show RUN [--layers | --curve KEY]`,
// `moebench query "SQL"`: reading the database.
#include <cmath>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/cli/table_output.h"
#include "harness/store/liveness.h"
#include "harness/store/store.h"
#include "harness/sweep/run_filter.h"
#include "harness/sweep/run_groups.h"

namespace moebench {

namespace {

std::string Metric(const std::map<std::string, MetricRow>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : FormatNumber(it->second.value);
}

// A `running` row whose process is gone is listed as `interrupted`, with a note on stderr, so
// that no listing shows a dead run as running; the row itself is left alone: putting it back to
// pending is the sweep runner's job (and `train` takes it over), never a read verb's (Note
// [Stale runs] in harness/store/liveness.cpp).
std::string ListedStatus(const RunRow& r, const std::string& host) {
  if (r.status != RunStatus::kRunning) return RunStatusName(r.status);
  const std::string reason = StaleReason(r, host, kDefaultStaleAfter);
  if (reason.empty()) return RunStatusName(r.status);
  std::cerr << "note: run " << r.id << " is recorded as running but " << reason
            << "; listed as interrupted (moebench sweep or train resumes it from its "
               "checkpoint)\n";
  return "interrupted";
}

void ListRunsTable(const std::string& db, const std::string& sweep, const std::string& status,
                   const std::string& where, const std::string& sort, const std::string& format) {
  Store store(db, Store::Mode::kReadOnly);
  const std::string host = ThisHost();
  std::string sweep_id = sweep;
  if (!sweep.empty()) {
    auto s = store.GetSweep(sweep);
    if (!s) throw std::invalid_argument("no sweep named or with id '" + sweep + "' in " + db);
    sweep_id = s->id;
  }
  std::vector<std::vector<std::string>> rows;
  for (const std::string& id : SelectRunIds(store, sweep_id, status, where, sort)) {
    const RunRow r = *store.FindRun(id);
    const auto m = store.LatestMetrics(r.id);
    auto step = m.find("train_loss");
    rows.push_back({r.id, r.method, r.size, std::to_string(r.seed), ListedStatus(r, host),
                    step == m.end() ? "" : std::to_string(step->second.step),
                    Metric(m, "train_loss"), Metric(m, "valid_loss"), Metric(m, "valid_bleu"),
                    Metric(m, "tokens_per_s"), Metric(m, "mfu"), Metric(m, "comm.other_node_bytes"),
                    r.ended_at.empty() ? r.started_at : r.ended_at});
  }
  PrintRows({"run", "method", "size", "seed", "status", "step", "train_loss", "valid_loss",
             "valid_bleu", "tokens_per_s", "mfu", "other_node_B/step", "time"},
            rows, format);
}

std::vector<std::string> SplitList(const std::string& text, const std::string& what) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) throw std::invalid_argument(what + ": an empty entry in '" + text + "'");
    out.push_back(item);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

const std::vector<std::string>& KnownAggregates() {
  static const std::vector<std::string> kAggregates = {"mean", "std", "ci95", "min", "max", "n"};
  return kAggregates;
}

Cell AggregateCell(const Summary& s, const std::string& agg) {
  if (agg == "mean") return Cell::Number(s.mean);
  if (agg == "std") return Cell::Number(s.std);
  if (agg == "ci95") return Cell::Number(s.ci95);
  if (agg == "min") return Cell::Number(s.min);
  if (agg == "max") return Cell::Number(s.max);
  return Cell::Integer(s.n);
}

struct GroupedArgs {
  std::string group_by, agg = "mean,ci95,n",
                        metrics = "valid_bleu,test_bleu,valid_loss,tokens_per_s";
};

// One row per group: the key values, the finished runs' count, their seeds, the seeds missing,
// then metric.agg columns. See Note [Interval over seeds].
void ListRunGroups(const std::string& db, const std::string& sweep_id, const std::string& status,
                   const std::string& where, const std::string& sort, const std::string& format,
                   const GroupedArgs& g) {
  CheckTableFormat(format);
  const std::vector<std::string> keys =
      ParseGroupKeys(g.group_by.empty() ? std::string(kGroupByConfig) : g.group_by);
  const std::vector<std::string> aggs = SplitList(g.agg, "--agg");
  for (const std::string& a : aggs) {
    bool known = false;
    for (const std::string& k : KnownAggregates()) known = known || k == a;
    if (!known) {
      throw std::invalid_argument("--agg: unknown aggregate '" + a +
                                  "' (expected mean, std, ci95, min, max, n)");
    }
  }
  const std::vector<std::string> metrics = SplitList(g.metrics, "--metrics");
  Store store(db, Store::Mode::kReadOnly);
  std::vector<RunRow> runs;
  for (const std::string& id : SelectRunIds(store, sweep_id, status, where, sort)) {
    runs.push_back(*store.FindRun(id));
  }
  const std::vector<RunGroup> groups = GroupRuns(store, runs, keys, metrics);
  std::set<std::string> key_columns;
  for (const RunGroup& group : groups) {
    for (const auto& [k, v] : group.values) key_columns.insert(k);
  }
  std::vector<std::string> columns;
  // method and size first, then the rest in name order.
  for (const char* first : {"method", "size"}) {
    if (key_columns.count(first)) columns.push_back(first);
  }
  for (const std::string& k : key_columns) {
    if (k != "method" && k != "size") columns.push_back(k);
  }
  const size_t n_keys = columns.size();
  for (const char* c : {"runs", "seeds", "missing"}) columns.push_back(c);
  for (const std::string& m : metrics) {
    for (const std::string& a : aggs) columns.push_back(m + "." + a);
  }
  std::vector<std::vector<Cell>> rows;
  for (const RunGroup& group : groups) {
    std::vector<Cell> row;
    for (size_t i = 0; i < n_keys; i++) {
      auto it = group.values.find(columns[i]);
      row.push_back(it == group.values.end() ? Cell::Null() : Cell::Text(it->second));
    }
    std::string seeds, missing;
    for (int64_t seed : group.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(seed);
    for (const std::string& m : group.missing) missing += (missing.empty() ? "" : ",") + m;
    row.push_back(Cell::Integer(static_cast<int64_t>(group.finished.size())));
    row.push_back(Cell::Text(seeds));
    row.push_back(Cell::Text(missing));
    for (const std::string& m : metrics) {
      for (const std::string& a : aggs) row.push_back(AggregateCell(group.metrics.at(m), a));
    }
    rows.push_back(row);
  }
  PrintTable(columns, rows, format, std::cout);
}

// Per MoE layer at one logged step: the routing statistics the trainer records
// (moe.<layer>.*, harness/train/run_metrics.cpp) and the tokens per expert (expert_load).
void ShowLayers(const Store& store, const RunRow& r, int64_t step, const std::string& format) {
  const QueryResult steps = store.QueryWithParams(
      "SELECT DISTINCT step FROM metrics WHERE run_id = ? AND key GLOB 'moe.*' ORDER BY step",
      {r.id});
  if (steps.rows.empty()) {
    throw std::invalid_argument("run " + r.id + " (" + r.method +
                                ") has no per-layer MoE metrics (a dense run, or no step logged)");
  }
  if (step < 0) {
    step = std::stoll(*steps.rows.back()[0]);
  } else {
    bool logged = false;
    for (const auto& row : steps.rows) logged = logged || std::stoll(*row[0]) == step;
    if (!logged) {
      std::string list;
      for (const auto& row : steps.rows) list += (list.empty() ? "" : ", ") + *row[0];
      throw std::invalid_argument("--step " + std::to_string(step) + ": run " + r.id +
                                  " logged its MoE layers at steps " + list);
    }
  }
  std::map<int, std::map<std::string, double>> by_layer;
  const QueryResult values = store.QueryWithParams(
      "SELECT key, value FROM metrics WHERE run_id = ? AND step = ? AND key GLOB 'moe.*'",
      {r.id, step});
  for (const auto& row : values.rows) {
    const std::string& key = *row[0];
    const size_t dot = key.find('.', 4);
    if (dot == std::string::npos) continue;
    int layer = 0;
    try {
      layer = std::stoi(key.substr(4, dot - 4));
    } catch (const std::exception&) {
      continue;
    }
    by_layer[layer][key.substr(dot + 1)] = row[1] ? std::stod(*row[1]) : std::nan("");
  }
  std::map<int, std::vector<int64_t>> load;
  for (const ExpertLoadRow& e : store.ExpertLoad(r.id)) {
    if (e.step != step) continue;
    auto& v = load[e.layer];
    if (static_cast<int>(v.size()) <= e.expert) v.resize(e.expert + 1, 0);
    v[e.expert] = e.tokens;
  }
  auto value = [](const std::map<std::string, double>& m, const char* key) {
    auto it = m.find(key);
    return it == m.end() ? Cell::Null() : Cell::Number(it->second);
  };
  std::vector<std::vector<Cell>> rows;
  for (const auto& [layer, m] : by_layer) {
    std::string tokens;
    for (int64_t n : load[layer]) tokens += (tokens.empty() ? "" : " ") + std::to_string(n);
    rows.push_back({Cell::Integer(layer), Cell::Integer(step), Cell::Text(tokens),
                    value(m, "dropped_frac"), value(m, "entropy"), value(m, "load_cv"),
                    value(m, "load_max_mean"), value(m, "unused_experts"),
                    value(m, "cross_worker_frac")});
  }
  PrintTable({"layer", "step", "tokens_per_expert", "dropped_frac", "entropy", "load_cv",
              "load_max_mean", "unused_experts", "cross_worker_frac"},
             rows, format, std::cout);
}

void ShowCurve(const Store& store, const RunRow& r, const std::string& key,
               const std::string& format) {
  const std::vector<MetricRow> history = store.MetricHistory(r.id, key);
  if (history.empty()) {
    std::string known;
    int shown = 0;
    for (const auto& [k, m] : store.LatestMetrics(r.id)) {
      if (k.rfind("moe.", 0) == 0 || shown >= 40) continue;
      known += (known.empty() ? "" : ", ") + k;
      shown++;
    }
    throw std::invalid_argument("--curve: run " + r.id + " has no metric '" + key +
                                "' (it has: " + known + "; and moe.<layer>.* per MoE layer)");
  }
  std::vector<std::vector<Cell>> rows;
  for (const MetricRow& m : history) {
    rows.push_back({Cell::Integer(m.step), Cell::Number(m.wall_s), Cell::Number(m.value)});
  }
  PrintTable({"step", "wall_s", key}, rows, format, std::cout);
}

void ShowRun(const std::string& db, const std::string& id) {
  Store store(db, Store::Mode::kReadOnly);
  auto run = store.FindRun(id);
  if (!run) throw std::invalid_argument("no run '" + id + "' in " + db);
  const RunRow& r = *run;
  std::cout << "run        " << r.id << "\n"
            << "status     " << RunStatusName(r.status)
            << (r.exit_code ? " (exit " + std::to_string(*r.exit_code) + ")" : "") << "\n";
  if (r.status == RunStatus::kRunning) {
    const std::string stale = StaleReason(r, ThisHost(), kDefaultStaleAfter);
    if (!stale.empty()) {
      std::cout << "           " << stale
                << " (moebench sweep or train resumes it from its checkpoint)\n";
    }
  }
  if (!r.error.empty()) std::cout << "error      " << r.error << "\n";
  std::cout << "method     " << r.method << "\nsize       " << r.size << "\nseed       " << r.seed
            << "\nparams     " << r.params_total << " total, " << r.params_active
            << " active per token\n"
            << "started    " << r.started_at << "\nended      " << r.ended_at << "\nhost       "
            << r.host << " (" << r.device << ", " << r.threads << " threads)\nlibs       " << r.libs
            << "\n\nspec\n"
            << r.spec_json << "\n\nlatest metrics\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, m] : store.LatestMetrics(r.id)) {
    rows.push_back({key, std::to_string(m.step), FormatNumber(m.value)});
  }
  PrintRows({"metric", "step", "value"}, rows, "table");

  // Bytes by class over the whole run, per phase (fwd, bwd, counts, allreduce), with the
  // measured and the modeled time (Note [Network model]).
  struct PhaseTotals {
    std::array<int64_t, 6> n{};
    double ms = 0, modeled_ms = 0;
  };
  std::map<std::string, PhaseTotals> by_phase;
  int64_t steps = 0;
  for (const CommRow& c : store.Comm(r.id)) {
    auto& t = by_phase[c.phase];
    t.n[0] += c.calls;
    t.n[1] += c.bytes_local;
    t.n[2] += c.bytes_intra_node;
    t.n[3] += c.bytes_inter_node;
    t.n[4] += c.wire_intra_node;
    t.n[5] += c.wire_inter_node;
    t.ms += c.ms;
    t.modeled_ms += c.modeled_ms;
    steps = std::max(steps, c.step);
  }
  std::cout << "\ncommunication over " << steps << " steps (bytes; ms measured here, modeled)\n";
  rows.clear();
  for (const auto& [phase, t] : by_phase) {
    std::vector<std::string> row = {phase};
    for (int64_t v : t.n) row.push_back(std::to_string(v));
    row.push_back(FormatNumber(t.ms));
    row.push_back(FormatNumber(t.modeled_ms));
    rows.push_back(row);
  }
  PrintRows({"phase", "calls", "same_worker", "same_node", "other_node", "wire_same_node",
             "wire_other_node", "ms", "modeled_ms"},
            rows, "table");

  std::cout << "\nevaluations\n";
  rows.clear();
  for (const EvalRow& e : store.Evals(r.id)) {
    if (e.lang != "all" && e.split == "valid") continue;
    rows.push_back({std::to_string(e.step), e.split, e.lang, std::to_string(e.k),
                    FormatNumber(e.bleu), e.chrf ? FormatNumber(*e.chrf) : "",
                    e.loss ? FormatNumber(*e.loss) : "", e.signature});
  }
  PrintRows({"step", "split", "lang", "k", "bleu", "chrf", "nll", "signature"}, rows, "table");
}

void RunQuery(const std::string& db, const std::string& sql, const std::string& format) {
  Store store(db, Store::Mode::kReadOnly);
  QueryResult q = store.Query(sql);
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : q.rows) {
    std::vector<std::string> cells;
    for (const auto& c : r) cells.push_back(c ? *c : "NULL");
    rows.push_back(cells);
  }
  PrintRows(q.columns, rows, format);
}

}  // namespace

void RegisterInspectCommands(CLI::App& app) {
  struct Args {
    std::string db = kDefaultDb, sweep, status, format = "table", run, sql, where, sort;
  };
  auto a = std::make_shared<Args>();

  CLI::App* runs = app.add_subcommand("runs", "list runs with their status and key metrics");
  AddDbOption(*runs, a->db);
  runs->add_option("--sweep", a->sweep, "only runs of this sweep (name or id)");
  runs->add_option("--status", a->status, "only runs with this status")
      ->check(CLI::IsMember({"pending", "running", "finished", "failed", "killed"}));
  runs->add_option("--where", a->where,
                   "filter over columns, params.<field or knob> and metrics.<key> (latest), e.g. "
                   "\"method = 'switch' and metrics.valid_bleu > 20\" (README: Querying)");
  runs->add_option("--sort", a->sort, "KEY [asc|desc], ... (same keys as --where)");
  runs->add_option("--format", a->format, "table | csv | json | md")->capture_default_str();
  auto g = std::make_shared<GroupedArgs>();
  auto* group_by = runs->add_option(
      "--group-by", g->group_by,
      "one row per group: KEY,KEY,... (columns such as method or size, params.<field or knob>) "
      "or 'config' (runs that differ only in the seed); metrics are aggregated over each "
      "group's finished runs");
  auto* agg = runs->add_option("--agg", g->agg,
                               "with --group-by: mean, std, ci95 (half-width of the 95% Student-t "
                               "interval over seeds: t_{0.975,n-1} s / sqrt(n)), min, max, n")
                  ->capture_default_str();
  auto* metrics = runs->add_option("--metrics", g->metrics,
                                   "with --group-by: the metrics (latest values) to aggregate")
                      ->capture_default_str();
  runs->callback([a, g, group_by, agg, metrics]() {
    if (group_by->count() == 0 && agg->count() == 0 && metrics->count() == 0) {
      ListRunsTable(a->db, a->sweep, a->status, a->where, a->sort, a->format);
      return;
    }
    std::string sweep_id;
    if (!a->sweep.empty()) {
      Store store(a->db, Store::Mode::kReadOnly);
      auto s = store.GetSweep(a->sweep);
      if (!s)
        throw std::invalid_argument("no sweep named or with id '" + a->sweep + "' in " + a->db);
      sweep_id = s->id;
    }
    ListRunGroups(a->db, sweep_id, a->status, a->where, a->sort, a->format, *g);
  });

  struct ShowArgs {
    bool layers = false;
    int64_t step = -1;
    std::string curve, format = "table";
  };
  auto sh = std::make_shared<ShowArgs>();
  CLI::App* show = app.add_subcommand(
      "show", "one run: spec, metrics summary, bytes by class; or its MoE layers, or a curve");
  AddDbOption(*show, a->db);
  show->add_option("run", a->run, "run id or a unique prefix")->required();
  auto* layers = show->add_flag(
      "--layers", sh->layers,
      "per MoE layer: tokens per expert, dropped fraction, router entropy, load CV, max/mean "
      "load, unused experts, cross-worker fraction (at the last logged step, or --step)");
  show->add_option("--step", sh->step, "with --layers: this logged step instead of the last");
  auto* curve =
      show->add_option("--curve", sh->curve, "print one metric's series: step, wall_s, value");
  layers->excludes(curve);
  show->add_option("--format", sh->format, "--layers, --curve: table | csv | json | md")
      ->capture_default_str();
  show->callback([a, sh]() {
    if (!sh->layers && sh->curve.empty()) {
      if (sh->step >= 0) throw std::invalid_argument("--step goes with --layers");
      ShowRun(a->db, a->run);
      return;
    }
    CheckTableFormat(sh->format);
    Store store(a->db, Store::Mode::kReadOnly);
    auto run = store.FindRun(a->run);
    if (!run) throw std::invalid_argument("no run '" + a->run + "' in " + a->db);
    if (sh->layers) {
      ShowLayers(store, *run, sh->step, sh->format);
    } else {
      ShowCurve(store, *run, sh->curve, sh->format);
    }
  });

  CLI::App* query = app.add_subcommand("query", "run read-only SQL against the database");
  AddDbOption(*query, a->db);
  query->add_option("sql", a->sql, "the SQL statement")->required();
  query->add_option("--format", a->format, "table | csv | json | md")->capture_default_str();
  query->callback([a]() { RunQuery(a->db, a->sql, a->format); });
}

}  // namespace moebench
