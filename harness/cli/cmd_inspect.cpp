// `moebench runs`, `moebench show RUN`, `moebench query "SQL"`: reading the database.
#include <iostream>
#include <memory>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/store/store.h"
#include "harness/store/liveness.h"
#include "harness/sweep/run_filter.h"

namespace moebench {

namespace {

std::string Metric(const std::map<std::string, MetricRow>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? "" : FormatNumber(it->second.value);
}

// A `running` row whose process is gone is put back to pending here too, so that no
// listing shows a dead run as running forever (see Note [Stale runs] in liveness.cpp).
void RequeueStale(const std::string& db) {
  std::vector<RunRow> stale;
  const std::string host = ThisHost();
  {
    Store store(db, Store::Mode::kReadOnly);
    for (const RunRow& r : store.ListRuns("", "running")) {
      if (!StaleReason(r, host, kDefaultStaleAfter).empty()) stale.push_back(r);
    }
  }
  if (stale.empty()) return;
  Store store(db);
  for (const std::string& id : RequeueStaleRuns(store, stale, kDefaultStaleAfter)) {
    std::cerr << "note: run " << id
              << " was marked running but its process is gone; it is pending again (moebench "
                 "sweep or train resumes it from its checkpoint)\n";
  }
}

void ListRunsTable(const std::string& db, const std::string& sweep, const std::string& status,
                   const std::string& where, const std::string& sort, const std::string& format) {
  RequeueStale(db);
  Store store(db, Store::Mode::kReadOnly);
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
    rows.push_back({r.id, r.method, r.size, std::to_string(r.seed), RunStatusName(r.status),
                    step == m.end() ? "" : std::to_string(step->second.step),
                    Metric(m, "train_loss"), Metric(m, "valid_loss"), Metric(m, "valid_bleu"),
                    Metric(m, "tokens_per_s"), Metric(m, "comm.other_node_bytes"),
                    r.ended_at.empty() ? r.started_at : r.ended_at});
  }
  PrintRows({"run", "method", "size", "seed", "status", "step", "train_loss", "valid_loss",
             "valid_bleu", "tokens_per_s", "other_node_B/step", "time"},
            rows, format);
}

void ShowRun(const std::string& db, const std::string& id) {
  Store store(db, Store::Mode::kReadOnly);
  auto run = store.FindRun(id);
  if (!run) throw std::invalid_argument("no run '" + id + "' in " + db);
  const RunRow& r = *run;
  std::cout << "run        " << r.id << "\n"
            << "status     " << RunStatusName(r.status)
            << (r.exit_code ? " (exit " + std::to_string(*r.exit_code) + ")" : "") << "\n";
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
  runs->add_option("--format", a->format, "table | csv | json")->capture_default_str();
  runs->callback(
      [a]() { ListRunsTable(a->db, a->sweep, a->status, a->where, a->sort, a->format); });

  CLI::App* show = app.add_subcommand("show", "one run: spec, metrics summary, bytes by class");
  AddDbOption(*show, a->db);
  show->add_option("run", a->run, "run id or a unique prefix")->required();
  show->callback([a]() { ShowRun(a->db, a->run); });

  CLI::App* query = app.add_subcommand("query", "run read-only SQL against the database");
  AddDbOption(*query, a->db);
  query->add_option("sql", a->sql, "the SQL statement")->required();
  query->add_option("--format", a->format, "table | csv | json")->capture_default_str();
  query->callback([a]() { RunQuery(a->db, a->sql, a->format); });
}

}  // namespace moebench
