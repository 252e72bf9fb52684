// `moebench compare RUN_A RUN_B`: two runs side by side: BLEU (with a paired bootstrap p-value
// when per-sentence outputs are stored), bytes per step by class, time and throughput.
//
// The paired bootstrap (harness/cli/run_significance.h) tests the headline by default (the mean
// over languages of each language's BLEU, resampled within each language), or with `--lang X`
// X's BLEU with X's tokenizer. `moebench diff A B --bleu` runs the same test.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/cli_common.h"
#include "harness/cli/run_significance.h"
#include "harness/store/store.h"

namespace moebench {

namespace {

struct CompareArgs {
  std::string db = kDefaultDb, run_a, run_b, format = "table";
  SignificanceOptions sig;
};

// Mean per step of a metric logged as a per-window average at the end of each window.
std::optional<double> WeightedMean(const std::vector<MetricRow>& history) {
  double total = 0;
  int64_t steps = 0, prev = 0;
  for (const MetricRow& m : history) {
    const int64_t window = m.step - prev;
    prev = m.step;
    if (window <= 0 || std::isnan(m.value)) continue;
    total += m.value * static_cast<double>(window);
    steps += window;
  }
  if (steps == 0) return std::nullopt;
  return total / static_cast<double>(steps);
}

std::optional<double> Latest(const std::map<std::string, MetricRow>& latest,
                             const std::string& key) {
  auto it = latest.find(key);
  if (it == latest.end() || std::isnan(it->second.value)) return std::nullopt;
  return it->second.value;
}

// BLEU of the last evaluation of `split` at the method's default k, for `lang`.
std::optional<double> LastBleu(const std::vector<EvalRow>& evals, const std::string& split,
                               const std::string& lang) {
  std::optional<double> out;
  int64_t step = -1;
  for (const EvalRow& e : evals) {
    if (e.split == split && e.lang == lang && e.k == 0 && e.step >= step) {
      step = e.step;
      out = e.bleu;
    }
  }
  return out;
}

// Spec keys (knobs flattened as knobs.<name>) whose values differ between the two runs.
std::vector<std::string> SpecDifferences(const RunRow& a, const RunRow& b) {
  auto flatten = [](const std::string& text) {
    std::map<std::string, std::string> out;
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return out;
    for (const auto& [k, v] : j.items()) {
      if (k == "knobs" && v.is_object()) {
        for (const auto& [kk, vv] : v.items()) out["knobs." + kk] = vv.dump();
      } else {
        out[k] = v.dump();
      }
    }
    return out;
  };
  const auto fa = flatten(a.spec_json), fb = flatten(b.spec_json);
  std::vector<std::string> diffs;
  std::map<std::string, int> keys;
  for (const auto& [k, v] : fa) keys[k] = 1;
  for (const auto& [k, v] : fb) keys[k] = 1;
  for (const auto& [k, unused] : keys) {
    auto ia = fa.find(k), ib = fb.find(k);
    const std::string va = ia == fa.end() ? "(unset)" : ia->second;
    const std::string vb = ib == fb.end() ? "(unset)" : ib->second;
    if (va != vb) diffs.push_back(k + ": " + va + " -> " + vb);
  }
  return diffs;
}

std::string Cell(const std::optional<double>& v) { return v ? FormatNumber(*v) : "-"; }

void Compare(const CompareArgs& args) {
  Store store(args.db, Store::Mode::kReadOnly);
  auto find = [&](const std::string& id) {
    auto run = store.FindRun(id);
    if (!run) throw std::invalid_argument("compare: no run '" + id + "' in " + args.db);
    return *run;
  };
  const RunRow a = find(args.run_a), b = find(args.run_b);

  struct Line {
    std::string metric;
    std::optional<double> a, b;
    bool ratio = false;  // show B / A rather than B - A
  };
  std::vector<Line> lines;
  const auto ea = store.Evals(a.id), eb = store.Evals(b.id);
  lines.push_back(
      {"valid BLEU (last)", LastBleu(ea, "valid", "all"), LastBleu(eb, "valid", "all")});
  std::map<std::string, int> langs;
  for (const auto* evals : {&ea, &eb}) {
    for (const EvalRow& e : *evals) {
      if (e.split == args.sig.split && e.k == 0) langs[e.lang] = 1;
    }
  }
  for (const auto& [lang, unused] : langs) {
    lines.push_back({args.sig.split + " BLEU " + lang, LastBleu(ea, args.sig.split, lang),
                     LastBleu(eb, args.sig.split, lang)});
  }
  const auto la = store.LatestMetrics(a.id), lb = store.LatestMetrics(b.id);
  lines.push_back(
      {"train_seconds", Latest(la, "train_seconds"), Latest(lb, "train_seconds"), true});
  const std::vector<std::pair<std::string, std::string>> averaged = {
      {"step_ms", "ms per step"},
      {"tokens_per_s", "tokens/s"},
      {"comm.same_worker_bytes", "bytes/step same worker"},
      {"comm.same_node_bytes", "bytes/step same node"},
      {"comm.other_node_bytes", "bytes/step other node"},
      {"comm.wire_same_node_bytes", "wire bytes/step same node"},
      {"comm.wire_other_node_bytes", "wire bytes/step other node"},
      {"comm.calls", "all-to-alls/step"}};
  for (const auto& [key, label] : averaged) {
    lines.push_back({label, WeightedMean(store.MetricHistory(a.id, key)),
                     WeightedMean(store.MetricHistory(b.id, key)), true});
  }
  lines.push_back({"params total", static_cast<double>(a.params_total),
                   static_cast<double>(b.params_total), true});
  lines.push_back({"params active", static_cast<double>(a.params_active),
                   static_cast<double>(b.params_active), true});
  const Significance sig = PairedSignificance(store, a, b, args.sig);
  const std::vector<std::string> diffs = SpecDifferences(a, b);

  auto change = [](const Line& l) -> std::optional<double> {
    if (!l.a || !l.b) return std::nullopt;
    if (!l.ratio) return *l.b - *l.a;
    if (*l.a == 0) return std::nullopt;
    return *l.b / *l.a;
  };
  if (args.format == "json") {
    auto run_json = [](const RunRow& r) {
      return nlohmann::json{{"id", r.id},
                            {"method", r.method},
                            {"size", r.size},
                            {"seed", r.seed},
                            {"status", RunStatusName(r.status)}};
    };
    auto opt = [](const std::optional<double>& v) {
      return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    nlohmann::json rows = nlohmann::json::array();
    for (const Line& l : lines) {
      rows.push_back({{"metric", l.metric},
                      {"a", opt(l.a)},
                      {"b", opt(l.b)},
                      {l.ratio ? "b_over_a" : "b_minus_a", opt(change(l))}});
    }
    nlohmann::json out = {{"a", run_json(a)},
                          {"b", run_json(b)},
                          {"spec_differences", diffs},
                          {"rows", rows},
                          {"significance",
                           {{"p_value", opt(sig.p_value)},
                            {"bleu_a", opt(sig.bleu_a)},
                            {"bleu_b", opt(sig.bleu_b)},
                            {"sentences", sig.sentences},
                            {"split", args.sig.split},
                            {"lang", args.sig.lang},
                            {"languages", sig.languages},
                            {"tokenizers", sig.tokenizers},
                            {"note", sig.note}}}};
    std::cout << out.dump(2) << std::endl;
    return;
  }
  std::cout << "A  " << a.id << "  " << a.method << " " << a.size << " seed " << a.seed << " ("
            << RunStatusName(a.status) << ")\n"
            << "B  " << b.id << "  " << b.method << " " << b.size << " seed " << b.seed << " ("
            << RunStatusName(b.status) << ")\n";
  std::cout << "spec differences: " << (diffs.empty() ? "none" : "") << "\n";
  for (const std::string& d : diffs) std::cout << "  " << d << "\n";
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const Line& l : lines) {
    const auto c = change(l);
    rows.push_back(
        {l.metric, Cell(l.a), Cell(l.b),
         c ? (l.ratio ? "x" + FormatNumber(*c) : (*c >= 0 ? "+" : "") + FormatNumber(*c)) : "-"});
  }
  PrintRows({"metric", "A", "B", "B vs A"}, rows, args.format);
  std::cout << "\n" << SignificanceLine(sig, args.sig) << "\n";
}

}  // namespace

void RegisterCompareCommand(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "compare two runs: BLEU (paired bootstrap when outputs are stored), bytes, time");
  AddDbOption(*cmd, args->db);
  cmd->add_option("run_a", args->run_a, "baseline run (id or unique prefix)")->required();
  cmd->add_option("run_b", args->run_b, "the other run (id or unique prefix)")->required();
  AddSignificanceOptions(*cmd, &args->sig);
  cmd->add_option("--format", args->format, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->callback([args]() { Compare(*args); });
}

}  // namespace moebench
