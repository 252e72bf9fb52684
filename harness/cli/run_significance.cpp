#include "harness/cli/run_significance.h"

#include <algorithm>

#include <CLI/CLI.hpp>

#include "harness/bleu/per_language.h"
#include "harness/bleu/significance.h"
#include "harness/bleu/tokenizer.h"
#include "harness/cli/cli_common.h"

namespace moebench {

namespace {

constexpr const char* kOutputsTable = "outputs";

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

}  // namespace

Significance PairedSignificance(const Store& store, const RunRow& a, const RunRow& b,
                                const SignificanceOptions& args) {
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
               std::to_string(groups.languages.size()) +
               " languages, resampled within each language";
  }
  return sig;
}

std::string SignificanceLine(const Significance& sig, const SignificanceOptions& opt) {
  std::string line = "significance (" + opt.split + " BLEU, " + opt.lang + "): ";
  if (sig.p_value) line += "p = " + FormatNumber(*sig.p_value) + "; ";
  return line + sig.note;
}

std::vector<CLI::Option*> AddSignificanceOptions(CLI::App& cmd, SignificanceOptions* opt,
                                                 const std::string& help_prefix) {
  std::vector<CLI::Option*> options;
  options.push_back(
      cmd.add_option("--split", opt->split, help_prefix + "test | valid (which BLEU to test)")
          ->check(CLI::IsMember({"test", "valid"}))
          ->capture_default_str());
  options.push_back(cmd.add_option("--lang", opt->lang,
                                   help_prefix +
                                       "language of the significance test (all = the headline, the "
                                       "mean over languages)")
                        ->capture_default_str());
  options.push_back(cmd.add_option("--samples", opt->samples, help_prefix + "bootstrap resamples")
                        ->check(CLI::PositiveNumber)
                        ->capture_default_str());
  options.push_back(
      cmd.add_option("--seed", opt->seed, help_prefix + "bootstrap seed")->capture_default_str());
  return options;
}

}  // namespace moebench
