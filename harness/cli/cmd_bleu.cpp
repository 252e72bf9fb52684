// `moebench bleu`, a local `sacrebleu` (2.3.1) for BLEU and chrF.
//
// Like sacrebleu: references are positional files, hypotheses come from stdin or -i FILE...;
// lines are split on '\n' and right-stripped; the default output is JSON with one decimal
// (-w/--width), `-f text` prints "BLEU|<signature> = 20.8 54.4/..."; --sentence-level prints one
// text line per segment with effective order on; several -i files print a table, and with
// --paired-bs each is tested against the first (the baseline).
// Where we differ:
//   - sacreBLEU's single-dash long options (-tok, -lc, -sl, -s, -sv, -cc, -cw, -pbs, -pbsn,
//     -sh) and its -l are accepted, but CLI11 2.1 cannot declare them (it would read "-lc" as
//     "-l c"), so they are read from the subcommand's leftover arguments (see
//     ApplySacreBleuAliases); --help lists only the long forms.
//   - -l SRC-TGT only picks the tokenizer sacreBLEU would (zh, ja-mecab, else 13a; Korean's
//     ko-mecab is refused) when -tok is not given.
//   - --langs FILE is ours: one target language per segment; each language is scored with its
//     own tokenizer (unless -tok) and the score is the mean over languages, the headline of a
//     multilingual run (harness/bleu/per_language.h); --paired-bs then resamples that mean
//     within each language (Note [Stratified bootstrap] in harness/bleu/significance.h).
//   - -tok ja-mecab uses libmecab with the system's IPA dictionary, which on Debian has one
//     entry (令和) more than sacreBLEU's `ipadic` package: see Note [ja-mecab dictionary].
//   - stdin holds one system (sacreBLEU also splits tab-separated systems); no -t test sets,
//     --num-refs, TER, --confidence or --paired-ar.
//   - --sentence-level and the multi-system tables print JSON only when -f json is given
//     explicitly (sacreBLEU always prints text there); that JSON is our own layout.
//   - the bootstrap draws from our own PRNG (see harness/bleu/significance.h), so p-values and
//     intervals are statistically, not digit for digit, equal to sacreBLEU's; --seed overrides
//     SACREBLEU_SEED, and --paired-bs-pvalue one-sided selects Koehn's one-sided test.
//   - the --paired-bs JSON adds, per system, the mean difference to the baseline over the
//     resamples and its 2.5%/97.5% points (diff_mean, diff_ci95; Note [Bootstrap differences] in
//     harness/bleu/significance.h).
#include "harness/cli/cmd_bleu.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bleu/bleu.h"
#include "harness/bleu/chrf.h"
#include "harness/bleu/per_language.h"
#include "harness/bleu/score_format.h"
#include "harness/bleu/signature.h"
#include "harness/bleu/significance.h"
#include "harness/bleu/tokenizer.h"
#include "harness/bleu/unicode_text.h"

namespace moebench {

namespace {

constexpr int kDefaultWidth = 1;
constexpr int kDefaultPairedSamples = 1000;
constexpr const char* kDefaultSeed = "12345";
constexpr double kSignificanceLevel = 0.05;

struct BleuCommandArgs {
  std::vector<std::string> refs;
  std::vector<std::string> inputs;
  std::vector<std::string> metrics = {"bleu"};
  std::string tokenize = "13a";
  bool tokenize_given = false;  // -tok/--tokenize: then no per-language choice
  std::string language_pair;    // -l SRC-TGT: the tokenizer of TGT when -tok is not given
  std::string langs_file;       // --langs: one target language code per segment
  // From --langs, once read: the segments of each language, and each segment's language.
  std::shared_ptr<const LanguageGroups> groups;
  std::vector<std::string> segment_langs;
  std::string smooth_method = "exp";
  std::optional<double> smooth_value;
  bool lowercase = false;
  bool force = false;
  bool sentence_level = false;
  int chrf_char_order = 6;
  int chrf_word_order = 0;
  int chrf_beta = 2;
  bool chrf_whitespace = false;
  bool chrf_lowercase = false;
  bool chrf_eps_smoothing = false;
  bool paired_bs = false;
  int paired_bs_n = kDefaultPairedSamples;
  std::string paired_bs_pvalue = "sacrebleu";
  std::string seed;  // empty: $SACREBLEU_SEED, else 12345
  std::string format = "json";
  bool format_given = false;
  bool score_only = false;
  int width = kDefaultWidth;
  bool short_signature = false;
  bool quiet = false;
};

struct TextStream {
  std::string name;  // file name, or "stdin"
  std::vector<std::string> lines;
};

enum class Metric { kBleu, kChrf };

// ---- arguments
// -----------------------------------------------------------------------------------

int ParseInt(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw std::runtime_error("option " + option + " needs an integer, got '" + text + "'");
}

double ParseDouble(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw std::runtime_error("option " + option + " needs a number, got '" + text + "'");
}

// Reads sacreBLEU's single-dash long options and the positional reference files from the
// arguments CLI11 left over, in their original order.
void ApplySacreBleuAliases(const std::vector<std::string>& extras, BleuCommandArgs* args) {
  for (size_t i = 0; i < extras.size(); ++i) {
    const std::string& arg = extras[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= extras.size()) throw std::runtime_error("option " + arg + " needs a value");
      return extras[++i];
    };
    if (arg == "-tok") {
      args->tokenize = value();
      args->tokenize_given = true;
    } else if (arg == "-l") {
      args->language_pair = value();
    } else if (arg == "-s") {
      args->smooth_method = value();
    } else if (arg == "-sv") {
      args->smooth_value = ParseDouble(value(), arg);
    } else if (arg == "-lc") {
      args->lowercase = true;
    } else if (arg == "-sl") {
      args->sentence_level = true;
    } else if (arg == "-cc") {
      args->chrf_char_order = ParseInt(value(), arg);
    } else if (arg == "-cw") {
      args->chrf_word_order = ParseInt(value(), arg);
    } else if (arg == "-pbs") {
      args->paired_bs = true;
    } else if (arg == "-pbsn") {
      args->paired_bs_n = ParseInt(value(), arg);
    } else if (arg == "-sh") {
      args->short_signature = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      throw std::runtime_error("unknown option '" + arg + "' (see moebench bleu --help)");
    } else {
      args->refs.push_back(arg);
    }
  }
}

// ---- input -----------------------------------------------------------------------------------

// Lines as sacreBLEU reads them: split on '\n' only, each right-stripped of Unicode whitespace.
std::vector<std::string> SplitLines(const std::string& content, const std::string& name) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    const std::string line = content.substr(start, end - start);
    const std::string problem = Utf8Problem(line);
    if (!problem.empty()) {
      throw std::runtime_error(name + ":" + std::to_string(lines.size() + 1) + ": " + problem);
    }
    lines.push_back(RStripWhitespace(line));
    start = end + 1;
  }
  return lines;
}

TextStream ReadTextFile(const std::string& path, const std::string& role) {
  // An ifstream opens a folder and reads it as empty: say what it is instead.
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    throw std::runtime_error(role + " file '" + path + "' is a folder, not a text file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + role + " file '" + path + "'");
  const std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {path, SplitLines(content, path)};
}

TextStream ReadStdin() {
  const std::string content((std::istreambuf_iterator<char>(std::cin)),
                            std::istreambuf_iterator<char>());
  return {"stdin", SplitLines(content, "stdin")};
}

std::vector<TextStream> ReadSystems(const BleuCommandArgs& args) {
  std::vector<TextStream> systems;
  if (args.inputs.empty()) {
    systems.push_back(ReadStdin());
    return systems;
  }
  for (const std::string& path : args.inputs) {
    bool duplicate = false;
    for (const TextStream& seen : systems) duplicate = duplicate || seen.name == path;
    if (duplicate) {
      // Like sacreBLEU: a baseline given again among the systems is skipped, any other repeat
      // would make the output ambiguous.
      if (args.paired_bs && path == systems[0].name) continue;
      throw std::runtime_error("system '" + path + "' is given twice with -i");
    }
    systems.push_back(ReadTextFile(path, "hypothesis"));
  }
  return systems;
}

void CheckLineCounts(const std::vector<TextStream>& systems, const std::vector<TextStream>& refs) {
  for (const TextStream& system : systems) {
    for (const TextStream& ref : refs) {
      if (system.lines.size() != ref.lines.size()) {
        throw std::runtime_error("hypotheses '" + system.name + "' have " +
                                 std::to_string(system.lines.size()) + " lines but reference '" +
                                 ref.name + "' has " + std::to_string(ref.lines.size()) + " lines");
      }
    }
  }
}

// ---- metrics
// ---------------------------------------------------------------------------------------

std::vector<Metric> ParseMetrics(const std::vector<std::string>& names) {
  bool bleu = false;
  bool chrf = false;
  for (const std::string& name : names) {
    if (name == "bleu") {
      bleu = true;
    } else if (name == "chrf") {
      chrf = true;
    } else {
      throw std::runtime_error("unknown metric '" + name + "' (valid: bleu, chrf)");
    }
  }
  // sacreBLEU reports metrics sorted by name: BLEU before CHRF.
  std::vector<Metric> metrics;
  if (bleu) metrics.push_back(Metric::kBleu);
  if (chrf) metrics.push_back(Metric::kChrf);
  if (metrics.empty()) throw std::runtime_error("no metric given to -m/--metrics");
  return metrics;
}

BleuOptions MakeBleuOptions(const BleuCommandArgs& args) {
  BleuOptions opt;
  opt.tokenize = args.tokenize;
  opt.smooth_method = args.smooth_method;
  opt.smooth_value = args.smooth_value;
  opt.lowercase = args.lowercase;
  opt.force = args.force;
  // sacreBLEU >= 2.0 turns effective order on for --sentence-level only.
  opt.effective_order = args.sentence_level;
  CheckBleuOptions(opt);
  return opt;
}

ChrfOptions MakeChrfOptions(const BleuCommandArgs& args) {
  ChrfOptions opt;
  opt.char_order = args.chrf_char_order;
  opt.word_order = args.chrf_word_order;
  opt.beta = args.chrf_beta;
  opt.lowercase = args.chrf_lowercase;
  opt.whitespace = args.chrf_whitespace;
  opt.eps_smoothing = args.chrf_eps_smoothing;
  return opt;
}

std::string MetricName(Metric metric, const BleuCommandArgs& args) {
  return metric == Metric::kBleu ? "BLEU" : ChrfName(MakeChrfOptions(args));
}

// With --langs and no -tok, each language gets its own tokenizer ("" here).
std::string TokenizerOverride(const BleuCommandArgs& args) {
  return args.tokenize_given ? args.tokenize : std::string();
}

// With --langs: one report per language of args.groups, in its order.
std::vector<ScoreReport> PerLanguageReports(Metric metric, const std::vector<std::string>& hyps,
                                            const std::vector<std::vector<std::string>>& refs,
                                            const BleuCommandArgs& args) {
  std::vector<ScoreReport> reports;
  if (metric == Metric::kBleu) {
    for (const BleuScore& score : CorpusBleuByLanguage(
             hyps, refs, *args.groups, MakeBleuOptions(args), TokenizerOverride(args))) {
      reports.push_back({"BLEU", score.score, score.Verbose(), score.signature});
    }
  } else {
    for (const ChrfScore& score :
         CorpusChrfByLanguage(hyps, refs, *args.groups, MakeChrfOptions(args))) {
      reports.push_back({score.name, score.score, "", score.signature});
    }
  }
  return reports;
}

// The mean over languages of per-language reports (per_language.h).
ScoreReport MeanReport(const std::vector<ScoreReport>& reports, const BleuCommandArgs& args) {
  ScoreReport mean;
  mean.name = reports.empty() ? "" : reports[0].name;
  std::vector<std::string> signatures;
  for (const ScoreReport& report : reports) {
    mean.score += report.score;
    signatures.push_back(report.signature);
  }
  if (!reports.empty()) mean.score /= static_cast<double>(reports.size());
  mean.signature = MeanSignature(mean.name, args.groups->languages, signatures);
  return mean;
}

ScoreReport CorpusReport(Metric metric, const std::vector<std::string>& hyps,
                         const std::vector<std::vector<std::string>>& refs,
                         const BleuCommandArgs& args) {
  if (args.groups) return MeanReport(PerLanguageReports(metric, hyps, refs, args), args);
  if (metric == Metric::kBleu) {
    const BleuScore score = CorpusBleu(hyps, refs, MakeBleuOptions(args));
    return {"BLEU", score.score, score.Verbose(), score.signature};
  }
  const ChrfScore score = CorpusChrf(hyps, refs, MakeChrfOptions(args));
  return {score.name, score.score, "", score.signature};
}

// `lang`: the segment's language from --langs, or "".
ScoreReport SentenceReport(Metric metric, const std::string& hyp,
                           const std::vector<std::string>& refs, const std::string& lang,
                           const BleuCommandArgs& args) {
  if (metric == Metric::kBleu) {
    BleuOptions opt = MakeBleuOptions(args);
    if (!lang.empty()) opt = BleuOptionsForLanguage(opt, lang, TokenizerOverride(args));
    const BleuScore score = SentenceBleu(hyp, refs, opt);
    return {"BLEU", score.score, score.Verbose(), score.signature};
  }
  const ChrfScore score = SentenceChrf(hyp, refs, MakeChrfOptions(args));
  return {score.name, score.score, "", score.signature};
}

SegmentStats MetricStats(Metric metric, const std::vector<std::string>& hyps,
                         const std::vector<std::vector<std::string>>& refs,
                         const BleuCommandArgs& args) {
  if (args.groups) {  // Note [Statistics by language]
    if (metric == Metric::kBleu) {
      return BleuSegmentStatsByLanguage(hyps, refs, *args.groups, MakeBleuOptions(args),
                                        TokenizerOverride(args));
    }
    return ChrfSegmentStatsByLanguage(hyps, refs, *args.groups, MakeChrfOptions(args));
  }
  if (metric == Metric::kBleu) return BleuSegmentStats(hyps, refs, MakeBleuOptions(args));
  return ChrfSegmentStats(hyps, refs, MakeChrfOptions(args));
}

ScoreFromStats MetricScorer(Metric metric, const BleuCommandArgs& args) {
  if (args.groups) {
    const size_t n = args.groups->languages.size();
    if (metric == Metric::kBleu) return MeanBleuOverLanguages(n, MakeBleuOptions(args));
    return MeanChrfOverLanguages(n, MakeChrfOptions(args));
  }
  if (metric == Metric::kBleu) {
    const BleuOptions opt = MakeBleuOptions(args);
    return [opt](const std::vector<int64_t>& sum) { return BleuFromStats(sum, opt).score; };
  }
  const ChrfOptions opt = MakeChrfOptions(args);
  return [opt](const std::vector<int64_t>& sum) { return ChrfFromStats(sum, opt); };
}

// Applies `change` to a signature, or to each language's signature inside a mean's
// ("mean of per-language BLEU: de:<sig>; fr:<sig>").
std::string MapSignatures(const std::string& signature,
                          const std::function<std::string(const std::string&)>& change) {
  const std::string prefix = "mean of per-language ";
  const size_t colon = signature.find(": ");
  if (signature.compare(0, prefix.size(), prefix) != 0 || colon == std::string::npos) {
    return change(signature);
  }
  std::string out = signature.substr(0, colon + 2);
  size_t start = colon + 2;
  while (start < signature.size()) {
    size_t end = signature.find("; ", start);
    if (end == std::string::npos) end = signature.size();
    const std::string item = signature.substr(start, end - start);
    const size_t lang_end = item.find(':');
    out += (start == colon + 2 ? "" : "; ") + item.substr(0, lang_end + 1) +
           change(item.substr(lang_end + 1));
    start = end + 2;
  }
  return out;
}

std::string DisplaySignature(const std::string& signature, const BleuCommandArgs& args) {
  if (!args.short_signature) return signature;
  return MapSignatures(signature, [](const std::string& sig) { return ShortenSignature(sig); });
}

// ---- output
// ----------------------------------------------------------------------------------------

// sacreBLEU's print_single_results.
void PrintSingleResults(const std::vector<std::string>& results, bool json) {
  if (json) {
    if (results.size() == 1) {
      std::cout << results[0] << "\n";
      return;
    }
    std::cout << "[\n";
    for (size_t i = 0; i < results.size(); ++i) {
      std::cout << results[i] << (i + 1 < results.size() ? ",\n" : "\n");
    }
    std::cout << "]\n";
    return;
  }
  if (results.size() == 1) {
    std::cout << results[0] << "\n";
    return;
  }
  // Align the lines on their '='.
  size_t left_width = 0;
  for (const std::string& line : results) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos && eq > 0) left_width = std::max(left_width, eq - 1);
  }
  for (const std::string& line : results) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cout << line << "\n";
      continue;
    }
    std::cout << std::string(left_width - (eq - 1), ' ') << line << "\n";
  }
}

void PrintSignatures(const std::vector<std::pair<std::string, std::string>>& signatures) {
  std::cout << "-----------------\nMetric signatures\n-----------------\n";
  for (const auto& entry : signatures) {
    std::string name = entry.first;
    if (name.size() < 10) name += std::string(10 - name.size(), ' ');
    std::cout << " - " << name << " " << entry.second << "\n";
  }
}

// ---- modes
// -------------------------------------------------------------------------------------------

std::vector<std::vector<std::string>> ReferenceStreams(const std::vector<TextStream>& refs) {
  std::vector<std::vector<std::string>> streams;
  for (const TextStream& ref : refs) streams.push_back(ref.lines);
  return streams;
}

void RunSentenceLevel(const TextStream& system, const std::vector<TextStream>& refs, Metric metric,
                      const BleuCommandArgs& args) {
  const bool json = args.format_given && args.format == "json";
  for (size_t i = 0; i < system.lines.size(); ++i) {
    std::vector<std::string> segment_refs;
    for (const TextStream& ref : refs) segment_refs.push_back(ref.lines[i]);
    ScoreReport report;
    try {
      const std::string lang = args.segment_langs.empty() ? "" : args.segment_langs[i];
      report = SentenceReport(metric, system.lines[i], segment_refs, lang, args);
    } catch (const std::exception& e) {
      throw std::runtime_error(system.name + ":" + std::to_string(i + 1) + ": " + e.what());
    }
    if (json && !args.score_only) {
      std::cout << FormatScoreJson(report, args.width, -1) << "\n";
    } else {
      report.signature = DisplaySignature(report.signature, args);
      std::cout << FormatScoreText(report, args.width, args.score_only) << "\n";
    }
  }
}

// With --langs: text, one line per language ("de: BLEU|<signature> = ...") and the mean last;
// JSON, {"name", "score" (the mean), "signature" (the mean's), "languages": {lang: {"score",
// "signature", "verbose_score"}}}; -b, the mean alone.
std::string LanguageResults(Metric metric, const std::vector<std::string>& hyps,
                            const std::vector<std::vector<std::string>>& refs,
                            const BleuCommandArgs& args) {
  const std::vector<ScoreReport> reports = PerLanguageReports(metric, hyps, refs, args);
  ScoreReport mean = MeanReport(reports, args);
  const std::vector<std::string>& languages = args.groups->languages;
  if (args.score_only) return FormatFixed(mean.score, args.width);
  if (args.format == "json") {
    const auto rounded = [&](double score) {
      return nlohmann::ordered_json::parse(FormatFixed(score, args.width));
    };
    nlohmann::ordered_json out;
    out["name"] = mean.name;
    out["score"] = rounded(mean.score);
    out["signature"] = mean.signature;
    out["languages"] = nlohmann::ordered_json::object();
    for (size_t l = 0; l < reports.size(); ++l) {
      nlohmann::ordered_json entry;
      entry["score"] = rounded(reports[l].score);
      entry["signature"] = reports[l].signature;
      if (!reports[l].verbose.empty()) entry["verbose_score"] = reports[l].verbose;
      out["languages"][languages[l]] = entry;
    }
    return out.dump(1);
  }
  std::string text;
  for (size_t l = 0; l < reports.size(); ++l) {
    ScoreReport report = reports[l];
    report.signature = DisplaySignature(report.signature, args);
    text += languages[l] + ": " + FormatScoreText(report, args.width) + "\n";
  }
  mean.signature = DisplaySignature(mean.signature, args);
  return text + FormatScoreText(mean, args.width);
}

void RunSingleSystem(const TextStream& system, const std::vector<TextStream>& refs,
                     const std::vector<Metric>& metrics, const BleuCommandArgs& args) {
  const bool json = args.format == "json";
  const std::vector<std::vector<std::string>> streams = ReferenceStreams(refs);
  std::vector<std::string> results;
  for (Metric metric : metrics) {
    if (args.groups) {
      results.push_back(LanguageResults(metric, system.lines, streams, args));
      continue;
    }
    ScoreReport report = CorpusReport(metric, system.lines, streams, args);
    if (json) {
      results.push_back(args.score_only ? FormatFixed(report.score, args.width)
                                        : FormatScoreJson(report, args.width));
    } else {
      report.signature = DisplaySignature(report.signature, args);
      results.push_back(FormatScoreText(report, args.width, args.score_only));
    }
  }
  PrintSingleResults(results, json);
}

std::string SystemLabel(const std::vector<TextStream>& systems, size_t s, bool paired) {
  return paired && s == 0 ? "Baseline: " + systems[s].name : systems[s].name;
}

void RunMultiSystem(const std::vector<TextStream>& systems, const std::vector<TextStream>& refs,
                    const std::vector<Metric>& metrics, const BleuCommandArgs& args) {
  const std::vector<std::vector<std::string>> streams = ReferenceStreams(refs);
  std::vector<std::vector<std::string>> rows = {{"System"}};
  nlohmann::ordered_json json_systems = nlohmann::ordered_json::array();
  std::vector<std::pair<std::string, std::string>> signatures;
  for (size_t s = 0; s < systems.size(); ++s) {
    rows.push_back({SystemLabel(systems, s, false)});
    json_systems.push_back({{"name", systems[s].name}});
  }
  for (Metric metric : metrics) {
    std::string signature;
    for (size_t s = 0; s < systems.size(); ++s) {
      const ScoreReport report = CorpusReport(metric, systems[s].lines, streams, args);
      rows[s + 1].push_back(FormatFixed(report.score, args.width));
      json_systems[s][report.name] = report.score;
      signature = report.signature;
      if (s == 0) rows[0].push_back(report.name);
    }
    signatures.emplace_back(MetricName(metric, args), signature);
  }
  if (args.format_given && args.format == "json") {
    nlohmann::ordered_json out;
    out["systems"] = json_systems;
    for (const auto& entry : signatures) out["signatures"][entry.first] = entry.second;
    std::cout << out.dump(1) << "\n";
    return;
  }
  std::cout << FormatTable(rows) << "\n";
  for (auto& entry : signatures) entry.second = DisplaySignature(entry.second, args);
  PrintSignatures(signatures);
}

// The seed as sacreBLEU takes it: SACREBLEU_SEED, default 12345, "none" for a random one.
struct SeedChoice {
  uint64_t value = 0;
  std::string label;  // for the signature: the number, or "none"
};

SeedChoice ChooseSeed(const BleuCommandArgs& args) {
  std::string text = args.seed;
  if (text.empty()) {
    const char* env = std::getenv("SACREBLEU_SEED");
    text = env != nullptr ? env : kDefaultSeed;
  }
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "none") {
    std::random_device device;
    return {(static_cast<uint64_t>(device()) << 32) ^ device(), "none"};
  }
  try {
    size_t used = 0;
    const unsigned long long value = std::stoull(text, &used);
    if (used == text.size()) return {value, text};
  } catch (const std::exception&) {
  }
  throw std::runtime_error("the bootstrap seed must be a non-negative integer or 'none', got '" +
                           text + "'");
}

void RunPairedBootstrap(const std::vector<TextStream>& systems, const std::vector<TextStream>& refs,
                        const std::vector<Metric>& metrics, const BleuCommandArgs& args) {
  if (args.paired_bs_pvalue != "sacrebleu" && args.paired_bs_pvalue != "one-sided") {
    throw std::runtime_error("--paired-bs-pvalue must be 'sacrebleu' or 'one-sided', got '" +
                             args.paired_bs_pvalue + "'");
  }
  const SeedChoice seed = ChooseSeed(args);
  PairedBootstrapOptions opt;
  opt.num_samples = args.paired_bs_n;
  opt.seed = seed.value;
  opt.p_value = args.paired_bs_pvalue == "one-sided" ? BootstrapPValue::kOneSided
                                                     : BootstrapPValue::kSacreBleu;
  if (args.groups) opt = StratifiedByLanguage(opt, *args.groups);  // Note [Stratified bootstrap]
  const std::vector<std::vector<std::string>> streams = ReferenceStreams(refs);

  std::vector<std::vector<std::string>> rows = {{"System"}};
  nlohmann::ordered_json json_systems = nlohmann::ordered_json::array();
  for (size_t s = 0; s < systems.size(); ++s) {
    rows.push_back({SystemLabel(systems, s, true)});
    json_systems.push_back({{"name", systems[s].name}, {"baseline", s == 0}});
  }
  std::vector<std::pair<std::string, std::string>> signatures;
  for (Metric metric : metrics) {
    std::vector<SegmentStats> stats;
    for (const TextStream& system : systems) {
      stats.push_back(MetricStats(metric, system.lines, streams, args));
    }
    const ScoreFromStats scorer = MetricScorer(metric, args);
    const PairedBootstrapResult result = PairedBootstrap(stats, scorer, opt);
    const std::vector<BootstrapDifference> differences =
        BootstrapDifferences(stats, scorer, opt, result);
    const std::string name = MetricName(metric, args);
    rows[0].push_back(name + " (μ ± 95% CI)");
    for (size_t s = 0; s < systems.size(); ++s) {
      const BootstrapSystemResult& r = result.systems[s];
      std::string cell = FormatFixed(r.score, args.width) + " (" + FormatFixed(r.mean, args.width) +
                         " ± " + FormatFixed(r.ci, args.width) + ")";
      nlohmann::ordered_json json_result = {{"score", r.score}, {"mean", r.mean}, {"ci", r.ci}};
      if (r.p_value) {
        cell += " (p = " + FormatFixed(*r.p_value, 4) + ")";
        if (*r.p_value <= kSignificanceLevel) cell += "*";
        json_result["p_value"] = *r.p_value;
        // Note [Bootstrap differences]
        json_result["diff_mean"] = differences[s].mean;
        json_result["diff_ci95"] = {differences[s].lower, differences[s].upper};
      }
      rows[s + 1].push_back(cell);
      json_systems[s][name] = json_result;
    }
    const std::string base_signature =
        CorpusReport(metric, systems[0].lines, streams, args).signature;
    signatures.emplace_back(name, MapSignatures(base_signature, [&](const std::string& sig) {
                              return AddBootstrapFields(sig, opt.num_samples, seed.label);
                            }));
  }

  if (args.format_given && args.format == "json") {
    nlohmann::ordered_json out;
    out["test"] = "paired-bs";
    out["p_value"] = args.paired_bs_pvalue;
    out["n_samples"] = opt.num_samples;
    out["seed"] = seed.label;
    out["systems"] = json_systems;
    for (const auto& entry : signatures) out["signatures"][entry.first] = entry.second;
    std::cout << out.dump(1) << "\n";
    return;
  }

  std::cout << FormatTable(rows) << "\n";
  const std::string title = "Paired bootstrap resampling test with " +
                            std::to_string(opt.num_samples) + " resampling trials";
  const std::string rule(title.size(), '-');
  std::cout << rule << "\n" << title << "\n" << rule << "\n";
  std::cout << " - Each system is pairwise compared to " << SystemLabel(systems, 0, true) << ".\n"
            << "   Actual system score / bootstrap estimated true mean / 95% CI are provided for"
               " each metric.\n\n";
  if (opt.p_value == BootstrapPValue::kSacreBleu) {
    std::cout << " - Null hypothesis: the system and the baseline translations are essentially\n"
                 "   generated by the same underlying process. The p-value is roughly the\n"
                 "   probability of the absolute score difference (delta) or higher occurring\n"
                 "   due to chance, under the assumption that the null hypothesis is correct.\n\n";
  } else {
    std::cout << " - One-sided test: the p-value is the share of resamples in which the system\n"
                 "   does not score higher than the baseline.\n\n";
  }
  std::cout << " - p-values <= 0.05 are marked with \"*\".\n\n";
  for (auto& entry : signatures) entry.second = DisplaySignature(entry.second, args);
  PrintSignatures(signatures);
}

// Reads --langs: one language code per segment, as many lines as there are segments.
void ReadLanguages(size_t num_segments, BleuCommandArgs* args) {
  if (num_segments == 0) throw std::runtime_error("--langs: there are no segments to score");
  TextStream langs = ReadTextFile(args->langs_file, "language");
  if (langs.lines.size() != num_segments) {
    throw std::runtime_error("language file '" + langs.name + "' has " +
                             std::to_string(langs.lines.size()) + " lines but there are " +
                             std::to_string(num_segments) + " segments");
  }
  for (size_t i = 0; i < langs.lines.size(); ++i) {
    std::string& code = langs.lines[i];
    code = EncodeUtf8(StripWhitespace(DecodeUtf8(code)));
    if (code.empty()) {
      throw std::runtime_error(langs.name + ":" + std::to_string(i + 1) + ": empty language code");
    }
  }
  args->groups = std::make_shared<const LanguageGroups>(GroupByLanguage(langs.lines));
  args->segment_langs = std::move(langs.lines);
}

void RunBleuCommand(BleuCommandArgs args, const std::vector<std::string>& extras) {
  ApplySacreBleuAliases(extras, &args);
  if (args.refs.empty()) {
    throw std::runtime_error("no reference file given (pass them as positional arguments)");
  }
  if (args.format != "json" && args.format != "text") {
    throw std::runtime_error("-f/--format must be 'json' or 'text', got '" + args.format + "'");
  }
  if (args.width < 0) throw std::runtime_error("-w/--width must be >= 0");
  if (args.smooth_value && !(*args.smooth_value >= 0 && std::isfinite(*args.smooth_value))) {
    std::ostringstream value;
    value << *args.smooth_value;
    throw std::runtime_error("--smooth-value/-sv must be a finite number >= 0, got " + value.str());
  }
  if (args.paired_bs_n < 1) throw std::runtime_error("--paired-bs-n must be >= 1");
  const std::vector<Metric> metrics = ParseMetrics(args.metrics);
  if (!args.language_pair.empty()) {
    if (!args.langs_file.empty()) {
      throw std::runtime_error("give -l/--language-pair or --langs, not both");
    }
    const size_t dash = args.language_pair.find('-');
    if (dash == std::string::npos || dash == 0 || dash + 1 == args.language_pair.size() ||
        args.language_pair.find('-', dash + 1) != std::string::npos) {
      throw std::runtime_error("-l/--language-pair must be SRC-TGT (e.g. en-de), got '" +
                               args.language_pair + "'");
    }
    const std::string target = args.language_pair.substr(dash + 1);
    if (!args.tokenize_given) {
      if (target == "ko") {
        throw std::runtime_error(
            "sacreBLEU scores Korean with ko-mecab, which moebench does not have; "
            "give -tok explicitly");
      }
      args.tokenize = TokenizerForLanguage(target);
    }
  }
  // Fail on bad options before reading any input.
  if (std::find(metrics.begin(), metrics.end(), Metric::kBleu) != metrics.end()) {
    MakeBleuOptions(args);
  }

  std::vector<TextStream> refs;
  for (const std::string& path : args.refs) refs.push_back(ReadTextFile(path, "reference"));
  const std::vector<TextStream> systems = ReadSystems(args);
  CheckLineCounts(systems, refs);
  if (!args.langs_file.empty()) ReadLanguages(systems[0].lines.size(), &args);

  if (args.sentence_level) {
    if (metrics.size() > 1) throw std::runtime_error("--sentence-level takes a single metric");
    if (systems.size() > 1) throw std::runtime_error("--sentence-level takes a single system");
    if (args.paired_bs)
      throw std::runtime_error("--paired-bs is unavailable with --sentence-level");
    RunSentenceLevel(systems[0], refs, metrics[0], args);
    return;
  }
  if (args.paired_bs) {
    if (systems.size() < 2) {
      throw std::runtime_error("--paired-bs needs several systems given to -i/--input");
    }
    RunPairedBootstrap(systems, refs, metrics, args);
    return;
  }
  if (systems.size() == 1) {
    RunSingleSystem(systems[0], refs, metrics, args);
    return;
  }
  RunMultiSystem(systems, refs, metrics, args);
}

}  // namespace

void RegisterBleuCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "bleu", "sacreBLEU-compatible BLEU and chrF: moebench bleu REF [REF...] [-i HYP...] < HYP");
  // The positional references and sacreBLEU's single-dash aliases arrive as extras.
  cmd->allow_extras();
  cmd->footer(
      "References are positional files (give them before -i). sacreBLEU's short forms are\n"
      "accepted too: -tok, -l, -s, -sv, -lc, -sl, -cc, -cw, -pbs, -pbsn, -sh.\n");

  auto args = std::make_shared<BleuCommandArgs>();
  cmd->add_option("-i,--input", args->inputs,
                  "Hypothesis files (default: stdin); the first is the --paired-bs baseline");
  cmd->add_option("-m,--metrics", args->metrics, "Metrics: bleu, chrf (default: bleu)");
  CLI::Option* tokenize =
      cmd->add_option("--tokenize", args->tokenize,
                      "BLEU tokenizer: 13a (default), intl, zh, char, none, ja-mecab (-tok)");
  // -l is read with the aliases: CLI11 would take "-lc" for "-l c".
  cmd->add_option("--language-pair", args->language_pair,
                  "SRC-TGT: without -tok, BLEU uses the tokenizer sacreBLEU picks for TGT "
                  "(zh, ja-mecab, else 13a) (-l)");
  cmd->add_option("--langs", args->langs_file,
                  "File of one target language code per segment: each language is scored "
                  "with its own tokenizer (unless -tok) and the score is their mean");
  cmd->add_option("--smooth-method", args->smooth_method,
                  "BLEU smoothing: exp, floor, add-k, none (-s)");
  CLI::Option* smooth_value = cmd->add_option(
      "--smooth-value", "BLEU smoothing value (floor: 0.1, add-k: 1 by default) (-sv)");
  cmd->add_flag("--lowercase", args->lowercase, "Case-insensitive BLEU (-lc)");
  cmd->add_flag("--force", args->force, "Accepted for compatibility; changes nothing");
  cmd->add_flag("--sentence-level", args->sentence_level, "One score per segment (-sl)");
  cmd->add_option("--chrf-char-order", args->chrf_char_order, "chrF character order (-cc)");
  cmd->add_option("--chrf-word-order", args->chrf_word_order,
                  "chrF word order; 2 gives chrF++ (-cw)");
  cmd->add_option("--chrf-beta", args->chrf_beta, "chrF beta");
  cmd->add_flag("--chrf-whitespace", args->chrf_whitespace, "Keep whitespace in chrF n-grams");
  cmd->add_flag("--chrf-lowercase", args->chrf_lowercase, "Case-insensitive chrF");
  cmd->add_flag("--chrf-eps-smoothing", args->chrf_eps_smoothing,
                "chrF++.py-style epsilon smoothing instead of effective order");
  cmd->add_flag("--paired-bs", args->paired_bs,
                "Paired bootstrap resampling against the first -i system (-pbs)");
  cmd->add_option("--paired-bs-n", args->paired_bs_n,
                  "Bootstrap resamples (default: 1000) (-pbsn)");
  cmd->add_option("--paired-bs-pvalue", args->paired_bs_pvalue,
                  "p-value rule: sacrebleu (two-sided, default) or one-sided (Koehn)");
  cmd->add_option("--seed", args->seed,
                  "Bootstrap seed (default: $SACREBLEU_SEED or 12345; 'none' for a random one)");
  CLI::Option* format =
      cmd->add_option("-f,--format", args->format, "Output: json (default), text");
  cmd->add_flag("-b,--score-only", args->score_only, "Print only the score");
  cmd->add_option("-w,--width", args->width, "Decimals of the score (default: 1)");
  cmd->add_flag("--short", args->short_signature, "Abbreviated signature (-sh)");
  cmd->add_flag("-q,--quiet", args->quiet, "Accepted for compatibility; we print no log");

  cmd->callback([cmd, args, smooth_value, format, tokenize]() {
    try {
      BleuCommandArgs run_args = *args;
      run_args.tokenize_given = run_args.tokenize_given || tokenize->count() > 0;
      if (smooth_value->count() > 0) {
        run_args.smooth_value = ParseDouble(smooth_value->as<std::string>(), "--smooth-value");
      }
      run_args.format_given = format->count() > 0;
      RunBleuCommand(run_args, cmd->remaining());
    } catch (const std::exception& e) {
      std::cout.flush();
      std::cerr << "moebench bleu: error: " << e.what() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace moebench
