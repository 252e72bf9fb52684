// `moebench compare RUN_A RUN_B`: two runs side by side: BLEU (with a paired bootstrap p-value
// when per-sentence outputs are stored), bytes per step by class, time and throughput.
//
// The paired bootstrap tests what the trainer reports (harness/bleu/per_language.h): with
// `--lang X`, X's BLEU scored with X's tokenizer (TokenizerForLanguage: zh, ja-mecab, else 13a);
// with `--lang all`, the headline, the mean over languages of each language's BLEU, every
// resample re-scoring each language with its own tokenizer (PairedBootstrapBleuByLanguage).
// Both runs must have decoded the same sentences (idx, reference) in the same languages.
// Outputs of old databases carry no language (lang ''): only then is the bootstrap the corpus
// BLEU of all sentences pooled, with 13a, and the note says so.
//
// Per-sentence outputs are written by the trainer (schema 2). The comparison reads them from an
// optional table, so that significance appears as soon as the trainer stores them:
//   outputs(run_id TEXT, step INTEGER, split TEXT, lang TEXT, k INTEGER, idx INTEGER,
//           hyp TEXT, ref TEXT, UNIQUE (run_id, step, split, k, idx))
// one row per decoded sentence (idx = position in the split, lang = its target language).
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/bleu/per_language.h"
#include "harness/bleu/significance.h"
#include "harness/bleu/tokenizer.h"
#include "harness/cli/cli_common.h"
#include "harness/store/store.h"

namespace moebench {

namespace {

constexpr const char* kOutputsTable = "outputs";

struct CompareArgs {
  std::string db = kDefaultDb, run_a, run_b, split = "test", lang = "all", format = "table";
  int samples = 1000;
  uint64_t seed = 12345;
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

struct Sentences {
  std::vector<int64_t> idx;
  std::vector<std::string> hyps, refs, langs;
};

// The run's outputs of the last step that has any for (split, k = 0), in idx order.
Sentences ReadOutputs(const Store& store, const std::string& run_id, const std::string& split,
                      const std::string& lang) {
  // The run id, split and language go in as bound parameters, never as SQL text.
  std::string sql =
      "SELECT idx, hyp, ref, lang FROM outputs WHERE run_id = ?1 AND split = ?2 AND k = 0"
      " AND step = (SELECT max(step) FROM outputs WHERE run_id = ?1 AND split = ?2 AND k = 0)";
  std::vector<Store::SqlParam> params = {run_id, split};
  if (lang != "all") {
    sql += " AND lang = ?3";
    params.push_back(lang);
  }
  sql += " ORDER BY idx";
  Sentences s;
  for (const auto& row : store.QueryWithParams(sql, params).rows) {
    s.idx.push_back(row[0] ? std::stoll(*row[0]) : -1);
    s.hyps.push_back(row[1].value_or(""));
    s.refs.push_back(row[2].value_or(""));
    s.langs.push_back(row[3].value_or(""));
  }
  return s;
}

struct Significance {
  std::optional<double> p_value;
  std::optional<double> bleu_a, bleu_b;
  int64_t sentences = 0;
  std::string note;
  std::vector<std::string> languages;             // tested; empty for the pooled fallback
  std::map<std::string, std::string> tokenizers;  // language -> its BLEU tokenizer
};

Significance PairedSignificance(const Store& store, const RunRow& a, const RunRow& b,
                                const CompareArgs& args) {
  Significance sig;
  const QueryResult has =
      store.QueryWithParams("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                            {std::string(kOutputsTable)});
  if (has.rows.empty() || !has.rows[0][0] || *has.rows[0][0] == "0") {
    sig.note = "not measured (no per-sentence outputs stored)";
    return sig;
  }
  const Sentences sa = ReadOutputs(store, a.id, args.split, args.lang);
  const Sentences sb = ReadOutputs(store, b.id, args.split, args.lang);
  if (sa.idx.empty() && sb.idx.empty()) {
    sig.note = args.lang == "all" ? "not measured (no per-sentence outputs stored)"
                                  : "not measured (no " + args.split + " outputs of language " +
                                        args.lang + " stored for either run)";
    return sig;
  }
  if (sa.idx.empty() || sb.idx.empty()) {
    sig.note = "not measured (no per-sentence outputs of split " + args.split + " for run " +
               (sa.idx.empty() ? a.id : b.id) + ")";
    return sig;
  }
  if (sa.idx != sb.idx || sa.refs != sb.refs || sa.langs != sb.langs) {
    sig.note = "not measured (the two runs' " + args.split +
               " outputs are not of the same sentences in the same languages: different data, "
               "sentence counts or languages)";
    return sig;
  }
  PairedBootstrapOptions opt;
  opt.num_samples = args.samples;
  opt.seed = args.seed;
  sig.sentences = static_cast<int64_t>(sa.idx.size());
  const std::string resamples = std::to_string(args.samples) + " resamples, seed " +
                                std::to_string(args.seed) + ", sacreBLEU's two-sided rule";
  const bool has_lang = std::any_of(sa.langs.begin(), sa.langs.end(),
                                    [](const std::string& l) { return !l.empty(); });
  const bool all_lang = std::all_of(sa.langs.begin(), sa.langs.end(),
                                    [](const std::string& l) { return !l.empty(); });
  if (!has_lang) {
    // Old databases: the outputs carry no language, so no tokenizer can be chosen per language.
    const PairedBootstrapResult r = PairedBootstrapBleu({sa.hyps, sb.hyps}, {sa.refs}, {}, opt);
    sig.bleu_a = r.systems[0].score;
    sig.bleu_b = r.systems[1].score;
    sig.p_value = r.systems[1].p_value;
    sig.note = "paired bootstrap (" + resamples + ") of the corpus BLEU of " +
               std::to_string(sig.sentences) + " " + args.split +
               " sentences pooled, tokenized with 13a: no language stored with these outputs "
               "(a database from before per-language scoring), so not the per-language headline";
    return sig;
  }
  if (!all_lang) {
    sig.note = "not measured (some " + args.split +
               " outputs have a language and others none: a mixed database)";
    return sig;
  }
  const LanguageGroups groups = GroupByLanguage(sa.langs);
  sig.languages = groups.languages;
  for (const std::string& lang : groups.languages)
    sig.tokenizers[lang] = TokenizerForLanguage(lang);
  const PairedBootstrapResult r =
      PairedBootstrapBleuByLanguage({sa.hyps, sb.hyps}, {sa.refs}, sa.langs, {}, opt);
  sig.bleu_a = r.systems[0].score;
  sig.bleu_b = r.systems[1].score;
  sig.p_value = r.systems[1].p_value;
  std::string toks;
  for (const auto& [lang, tok] : sig.tokenizers)
    toks += (toks.empty() ? "" : ", ") + lang + ": " + tok;
  if (groups.languages.size() == 1) {
    sig.note = "paired bootstrap (" + resamples + ") of the BLEU of " + groups.languages[0] +
               " (tok " + sig.tokenizers[groups.languages[0]] + ") on " +
               std::to_string(sig.sentences) + " " + args.split + " sentences";
  } else {
    sig.note = "paired bootstrap (" + resamples +
               ") of the headline: the mean over languages of each language's BLEU (" + toks +
               "), on " + std::to_string(sig.sentences) + " " + args.split + " sentences of " +
               std::to_string(groups.languages.size()) + " languages";
  }
  return sig;
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
      if (e.split == args.split && e.k == 0) langs[e.lang] = 1;
    }
  }
  for (const auto& [lang, unused] : langs) {
    lines.push_back({args.split + " BLEU " + lang, LastBleu(ea, args.split, lang),
                     LastBleu(eb, args.split, lang)});
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
  const Significance sig = PairedSignificance(store, a, b, args);
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
                            {"split", args.split},
                            {"lang", args.lang},
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
  std::cout << "\nsignificance (" << args.split << " BLEU, " << args.lang << "): ";
  if (sig.p_value) {
    std::cout << "p = " << FormatNumber(*sig.p_value) << "; " << sig.note << "\n";
  } else {
    std::cout << sig.note << "\n";
  }
}

}  // namespace

void RegisterCompareCommand(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compare", "compare two runs: BLEU (paired bootstrap when outputs are stored), bytes, time");
  AddDbOption(*cmd, args->db);
  cmd->add_option("run_a", args->run_a, "baseline run (id or unique prefix)")->required();
  cmd->add_option("run_b", args->run_b, "the other run (id or unique prefix)")->required();
  cmd->add_option("--split", args->split, "test | valid (which BLEU to test)")
      ->check(CLI::IsMember({"test", "valid"}))
      ->capture_default_str();
  cmd->add_option("--lang", args->lang, "language of the significance test (all = every one)")
      ->capture_default_str();
  cmd->add_option("--samples", args->samples, "bootstrap resamples")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "bootstrap seed")->capture_default_str();
  cmd->add_option("--format", args->format, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->callback([args]() { Compare(*args); });
}

}  // namespace moebench
