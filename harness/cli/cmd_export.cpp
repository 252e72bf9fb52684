// `moebench export`: runs with their parameters and final metrics (one row per run), or every
// logged metric value in long form (run, step, wall_s, key, value), as CSV, JSON or Markdown.
// Read-only. Parquet: see kNoParquet.
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/cli_common.h"
#include "harness/cli/table_output.h"
#include "harness/store/store.h"
#include "harness/sweep/run_filter.h"

namespace moebench {

namespace {

// Debian 12 packages no Parquet writer: Apache Arrow (libarrow-dev, libparquet-dev) and pyarrow
// (python3-pyarrow) are not in it, and moebench installs from Debian only.
constexpr const char* kNoParquet =
    "export: --format parquet is not available: writing Parquet needs Apache Arrow's C++ "
    "library (libparquet-dev) or pyarrow (python3-pyarrow), and Debian 12 packages neither. "
    "Export CSV instead (--format csv; --table history for metric histories in long form) "
    "and convert it where pyarrow is installed, e.g. "
    "pandas.read_csv('runs.csv').to_parquet('runs.parquet')";

std::string Num(double v) {
  if (std::isnan(v)) return "";
  nlohmann::json j = v;
  return j.dump();
}

// Every logged value of every metric of `runs`, one row each: run, step, wall_s, key, value.
void ExportHistoryLong(const Store& store, const std::vector<RunRow>& runs,
                       const std::string& format, std::ostream& out) {
  std::vector<std::vector<Cell>> rows;
  for (const RunRow& r : runs) {
    const QueryResult q = store.QueryWithParams(
        "SELECT step, wall_s, key, value FROM metrics WHERE run_id = ? ORDER BY key, step", {r.id});
    for (const auto& row : q.rows) {
      rows.push_back({Cell::Text(r.id), Cell::Integer(std::stoll(row[0].value_or("0"))),
                      Cell::Number(row[1] ? std::stod(*row[1]) : std::nan("")),
                      Cell::Text(row[2].value_or("")),
                      Cell::Number(row[3] ? std::stod(*row[3]) : std::nan(""))});
    }
  }
  PrintTable({"run", "step", "wall_s", "key", "value"}, rows, format, out);
}

void Export(const std::string& db, const std::string& sweep, const std::string& status,
            const std::string& where, const std::string& sort, const std::string& format,
            const std::string& out_path, bool history, const std::string& table) {
  if (format == "parquet") throw std::invalid_argument(kNoParquet);
  Store store(db, Store::Mode::kReadOnly);
  std::string sweep_id;
  if (!sweep.empty()) {
    auto s = store.GetSweep(sweep);
    if (!s) throw std::invalid_argument("no sweep named or with id '" + sweep + "' in " + db);
    sweep_id = s->id;
  }
  std::vector<RunRow> runs;
  for (const std::string& id : SelectRunIds(store, sweep_id, status, where, sort)) {
    runs.push_back(*store.FindRun(id));
  }
  std::ofstream file;
  if (!out_path.empty()) {
    file.open(out_path, std::ios::trunc);
    if (!file) throw std::runtime_error("--out: cannot write " + out_path);
  }
  std::ostream& out = out_path.empty() ? std::cout : file;
  if (table == "history") {
    ExportHistoryLong(store, runs, format, out);
    return;
  }
  if (format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const RunRow& r : runs) {
      nlohmann::json o = {{"id", r.id},
                          {"sweep", r.sweep_id},
                          {"method", r.method},
                          {"size", r.size},
                          {"seed", r.seed},
                          {"status", RunStatusName(r.status)},
                          {"started_at", r.started_at},
                          {"ended_at", r.ended_at},
                          {"error", r.error},
                          {"host", r.host},
                          {"threads", r.threads},
                          {"params_total", r.params_total},
                          {"params_active", r.params_active},
                          {"spec", nlohmann::json::parse(r.spec_json)}};
      nlohmann::json metrics = nlohmann::json::object();
      for (const auto& [key, m] : store.LatestMetrics(r.id)) {
        metrics[key] = {
            {"step", m.step},
            {"value", std::isnan(m.value) ? nlohmann::json() : nlohmann::json(m.value)}};
      }
      o["metrics"] = metrics;
      nlohmann::json evals = nlohmann::json::array();
      for (const EvalRow& e : store.Evals(r.id)) {
        evals.push_back({{"step", e.step},
                         {"split", e.split},
                         {"lang", e.lang},
                         {"k", e.k},
                         {"bleu", e.bleu},
                         {"chrf", e.chrf ? nlohmann::json(*e.chrf) : nlohmann::json()},
                         {"signature", e.signature}});
      }
      o["evals"] = evals;
      if (history) {
        nlohmann::json h = nlohmann::json::object();
        for (const auto& [key, m] : store.LatestMetrics(r.id)) {
          nlohmann::json rows = nlohmann::json::array();
          for (const MetricRow& row : store.MetricHistory(r.id, key)) {
            rows.push_back({row.step, row.wall_s,
                            std::isnan(row.value) ? nlohmann::json() : nlohmann::json(row.value)});
          }
          h[key] = rows;
        }
        o["history"] = h;
      }
      arr.push_back(o);
    }
    out << arr.dump(2) << "\n";
    return;
  }
  // CSV: one row per run; params.* and metrics.* columns are the union over the runs.
  std::set<std::string> param_keys, metric_keys;
  std::vector<nlohmann::json> specs;
  std::vector<std::map<std::string, MetricRow>> latest;
  for (const RunRow& r : runs) {
    specs.push_back(nlohmann::json::parse(r.spec_json));
    for (const auto& [k, v] : specs.back().items()) {
      if (k == "knobs") {
        for (const auto& [kk, vv] : v.items()) param_keys.insert(kk);
      } else if (k != "method" && k != "size" && k != "seed" && k != "sweep") {
        param_keys.insert(k);
      }
    }
    latest.push_back(store.LatestMetrics(r.id));
    for (const auto& [k, m] : latest.back()) metric_keys.insert(k);
  }
  std::vector<std::string> columns = {
      "id",       "sweep", "method",  "size",         "seed",          "status", "started_at",
      "ended_at", "host",  "threads", "params_total", "params_active", "error"};
  for (const std::string& k : param_keys) columns.push_back("params." + k);
  for (const std::string& k : metric_keys) columns.push_back("metrics." + k);
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < runs.size(); i++) {
    const RunRow& r = runs[i];
    std::vector<std::string> row = {r.id,
                                    r.sweep_id,
                                    r.method,
                                    r.size,
                                    std::to_string(r.seed),
                                    RunStatusName(r.status),
                                    r.started_at,
                                    r.ended_at,
                                    r.host,
                                    std::to_string(r.threads),
                                    std::to_string(r.params_total),
                                    std::to_string(r.params_active),
                                    r.error.substr(0, r.error.find('\n'))};
    for (const std::string& k : param_keys) {
      const nlohmann::json& s = specs[i];
      const nlohmann::json* v = nullptr;
      if (s.contains(k)) {
        v = &s[k];
      } else if (s.contains("knobs") && s["knobs"].contains(k)) {
        v = &s["knobs"][k];
      }
      if (v == nullptr) {
        row.push_back("");
      } else if (v->is_string()) {
        row.push_back(v->get<std::string>());
      } else if (v->is_array()) {
        std::string joined;
        for (const auto& e : *v) joined += (joined.empty() ? "" : ",") + e.get<std::string>();
        row.push_back(joined);
      } else {
        row.push_back(v->dump());
      }
    }
    for (const std::string& k : metric_keys) {
      auto it = latest[i].find(k);
      row.push_back(it == latest[i].end() ? "" : Num(it->second.value));
    }
    rows.push_back(row);
  }
  if (out_path.empty()) {
    PrintRows(columns, rows, format);
    return;
  }
  // PrintRows writes to stdout; write the file the same way.
  std::streambuf* old = std::cout.rdbuf(file.rdbuf());
  PrintRows(columns, rows, format);
  std::cout.rdbuf(old);
}

}  // namespace

void RegisterExportCommand(CLI::App& app) {
  struct ExportArgs {
    std::string db = kDefaultDb, sweep, status, where, sort, out;
    std::string format, table = "runs";
    bool csv = false, json = false, history = false;
  };
  auto e = std::make_shared<ExportArgs>();
  CLI::App* exp =
      app.add_subcommand("export",
                         "runs with their parameters and final metrics, or metric histories in "
                         "long form; CSV, JSON or Markdown");
  AddDbOption(*exp, e->db);
  exp->add_option("--sweep", e->sweep, "only runs of this sweep (name or id)");
  exp->add_option("--status", e->status, "only runs with this status")
      ->check(CLI::IsMember({"pending", "running", "finished", "failed", "killed"}));
  exp->add_option("--where", e->where,
                  "filter, e.g. \"method = 'switch' and metrics.valid_bleu > 20\"");
  exp->add_option("--sort", e->sort, "KEY [asc|desc], ...");
  auto* csv = exp->add_flag("--csv", e->csv, "one row per run: params.* and latest metrics.*");
  auto* json = exp->add_flag("--json", e->json, "runs with spec, latest metrics and evaluations");
  csv->excludes(json);
  auto* fmt = exp->add_option("--format", e->format, "csv | json | md | parquet (default csv)")
                  ->check(CLI::IsMember({"csv", "json", "md", "parquet"}));
  fmt->excludes(csv);
  fmt->excludes(json);
  exp->add_option("--table", e->table,
                  "runs: one row per run (params.*, final metrics.*); history: one row per "
                  "logged value (run, step, wall_s, key, value)")
      ->check(CLI::IsMember({"runs", "history"}))
      ->capture_default_str();
  exp->add_flag("--history", e->history,
                "--format json --table runs: each run's metric histories nested in it too");
  exp->add_option("--out,-o", e->out, "write to this file instead of stdout");
  exp->callback([e]() {
    const std::string format = !e->format.empty() ? e->format : e->json ? "json" : "csv";
    Export(e->db, e->sweep, e->status, e->where, e->sort, format, e->out, e->history, e->table);
  });
}

}  // namespace moebench
