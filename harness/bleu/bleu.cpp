#include "harness/bleu/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>

#include "harness/bleu/references.h"
#include "harness/bleu/score_format.h"
#include "harness/bleu/signature.h"
#include "harness/bleu/tokenizer.h"
#include "harness/bleu/unicode_text.h"

namespace moebench {

namespace {

constexpr double kFloorDefault = 0.1;
constexpr double kAddKDefault = 1.0;
// sacreBLEU's my_log(0): a finite stand-in for log(0) so a zero precision zeroes the score.
constexpr double kLogOfZero = -9999999999.0;

// N-grams keyed by their tokens joined with ' ': tokens never contain whitespace, so keys of
// different n-grams (of any order) never collide.
using NgramCounts = std::unordered_map<std::string, int64_t>;

// sacreBLEU's BLEU._preprocess_segment: lowercase, rstrip, tokenize.
std::vector<std::string> PreprocessedTokens(const std::string& text, const BleuOptions& opt) {
  const std::string cased = opt.lowercase ? LowerUnicode(text) : text;
  return SplitWhitespace(Tokenize(RStripWhitespace(cased), opt.tokenize));
}

NgramCounts CountNgrams(const std::vector<std::string>& tokens, int max_order) {
  NgramCounts counts;
  for (int n = 1; n <= max_order; ++n) {
    if (tokens.size() < static_cast<size_t>(n)) break;
    for (size_t i = 0; i + n <= tokens.size(); ++i) {
      std::string key = tokens[i];
      for (int k = 1; k < n; ++k) key += " " + tokens[i + k];
      ++counts[key];
    }
  }
  return counts;
}

int NgramOrder(const std::string& key) {
  int order = 1;
  for (char c : key) order += c == ' ';
  return order;
}

// sacreBLEU's _get_closest_ref_len: the closest length, the shorter one on a tie.
int64_t ClosestRefLength(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best_diff = -1;
  int64_t best_len = -1;
  for (int64_t ref_len : ref_lens) {
    const int64_t diff = std::llabs(hyp_len - ref_len);
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = ref_len;
    } else if (diff == best_diff && ref_len < best_len) {
      best_len = ref_len;
    }
  }
  return best_len;
}

double SmoothValue(const BleuOptions& opt) {
  if (opt.smooth_value) return *opt.smooth_value;
  if (opt.smooth_method == "floor") return kFloorDefault;
  if (opt.smooth_method == "add-k") return kAddKDefault;
  return 0;
}

}  // namespace

void CheckBleuOptions(const BleuOptions& opt) {
  CheckTokenizerName(opt.tokenize);
  const std::string& m = opt.smooth_method;
  if (m != "exp" && m != "floor" && m != "add-k" && m != "none") {
    throw std::runtime_error("unknown BLEU smoothing method '" + m +
                             "' (valid: exp, floor, add-k, none)");
  }
  if (opt.max_ngram_order < 1) {
    throw std::runtime_error("BLEU max_ngram_order must be >= 1, got " +
                             std::to_string(opt.max_ngram_order));
  }
}

SegmentStats BleuSegmentStats(const std::vector<std::string>& hyps,
                              const std::vector<std::vector<std::string>>& refs,
                              const BleuOptions& opt) {
  CheckBleuOptions(opt);
  const SegmentReferences gathered = GatherReferences(refs, hyps.size(), "BLEU");
  const int order = opt.max_ngram_order;
  SegmentStats stats;
  stats.num_segments = static_cast<int64_t>(hyps.size());
  stats.width = 2 + 2 * order;
  stats.values.assign(static_cast<size_t>(stats.num_segments * stats.width), 0);

  for (size_t i = 0; i < hyps.size(); ++i) {
    NgramCounts ref_ngrams;
    std::vector<int64_t> ref_lens;
    for (const std::string* ref : gathered.per_segment[i]) {
      const std::vector<std::string> tokens = PreprocessedTokens(*ref, opt);
      ref_lens.push_back(static_cast<int64_t>(tokens.size()));
      for (const auto& entry : CountNgrams(tokens, order)) {
        int64_t& best = ref_ngrams[entry.first];
        if (entry.second > best) best = entry.second;
      }
    }

    const std::vector<std::string> hyp_tokens = PreprocessedTokens(hyps[i], opt);
    const int64_t hyp_len = static_cast<int64_t>(hyp_tokens.size());
    int64_t* row = stats.values.data() + static_cast<int64_t>(i) * stats.width;
    row[0] = hyp_len;
    row[1] = ClosestRefLength(hyp_len, ref_lens);
    for (const auto& entry : CountNgrams(hyp_tokens, order)) {
      const int n = NgramOrder(entry.first);
      row[2 + order + (n - 1)] += entry.second;
      const auto match = ref_ngrams.find(entry.first);
      if (match != ref_ngrams.end()) row[2 + (n - 1)] += std::min(entry.second, match->second);
    }
  }
  return stats;
}

BleuScore BleuFromStats(const std::vector<int64_t>& stats, const BleuOptions& opt) {
  const int order = opt.max_ngram_order;
  if (stats.size() != static_cast<size_t>(2 + 2 * order)) {
    throw std::runtime_error("BleuFromStats: expected " + std::to_string(2 + 2 * order) +
                             " statistics for max_ngram_order " + std::to_string(order) + ", got " +
                             std::to_string(stats.size()));
  }
  BleuScore result;
  result.sys_len = static_cast<double>(stats[0]);
  result.ref_len = static_cast<double>(stats[1]);
  result.ratio = result.ref_len != 0 ? result.sys_len / result.ref_len : 0;
  result.counts.assign(stats.begin() + 2, stats.begin() + 2 + order);
  result.totals.assign(stats.begin() + 2 + order, stats.end());
  result.precisions.assign(static_cast<size_t>(order), 0.0);

  if (result.sys_len < result.ref_len) {
    result.bp = result.sys_len > 0 ? std::exp(1 - result.ref_len / result.sys_len) : 0.0;
  } else {
    result.bp = 1.0;
  }

  bool any_match = false;
  for (int64_t c : result.counts) any_match = any_match || c != 0;
  if (!any_match) return result;  // sacreBLEU's early exit (its issue #141): score 0

  const double smooth_value = SmoothValue(opt);
  double smooth_mteval = 1.0;
  int eff_order = order;
  for (int n = 1; n <= order; ++n) {
    double correct = static_cast<double>(result.counts[n - 1]);
    double total = static_cast<double>(result.totals[n - 1]);
    if (opt.smooth_method == "add-k" && n > 1) {
      correct += smooth_value;
      total += smooth_value;
    }
    if (total == 0) break;
    if (opt.effective_order) eff_order = n;
    double& precision = result.precisions[n - 1];
    if (correct == 0) {
      if (opt.smooth_method == "exp") {
        smooth_mteval *= 2;
        precision = 100.0 / (smooth_mteval * total);
      } else if (opt.smooth_method == "floor") {
        precision = 100.0 * smooth_value / total;
      }
    } else {
      precision = 100.0 * correct / total;
    }
  }

  double log_sum = 0;
  for (int n = 0; n < eff_order; ++n) {
    const double p = result.precisions[n];
    log_sum += p == 0.0 ? kLogOfZero : std::log(p);
  }
  result.score = result.bp * std::exp(log_sum / eff_order);
  return result;
}

std::string BleuSignature(const BleuOptions& opt, const std::string& nrefs) {
  std::string smooth = opt.smooth_method;
  // sacreBLEU appends the value, default or not, for the methods that take one.
  if (smooth == "floor" || smooth == "add-k")
    smooth += "[" + FormatFixed(SmoothValue(opt), 2) + "]";
  return BuildSignature(nrefs, {{"case", opt.lowercase ? "lc" : "mixed"},
                                {"eff", opt.effective_order ? "yes" : "no"},
                                {"tok", TokenizerSignature(opt.tokenize)},
                                {"smooth", smooth}});
}

BleuScore CorpusBleu(const std::vector<std::string>& hyps,
                     const std::vector<std::vector<std::string>>& refs, const BleuOptions& opt) {
  const SegmentStats stats = BleuSegmentStats(hyps, refs, opt);
  BleuScore score = BleuFromStats(stats.Sum(), opt);
  score.signature = BleuSignature(opt, GatherReferences(refs, hyps.size(), "BLEU").nrefs);
  return score;
}

BleuScore SentenceBleu(const std::string& hyp, const std::vector<std::string>& refs,
                       BleuOptions opt) {
  opt.effective_order = true;
  std::vector<std::vector<std::string>> streams;
  for (const std::string& ref : refs) streams.push_back({ref});
  return CorpusBleu({hyp}, streams, opt);
}

std::string BleuScore::Verbose() const {
  std::string text;
  for (size_t i = 0; i < precisions.size(); ++i) {
    if (i > 0) text += "/";
    text += FormatFixed(precisions[i], 1);
  }
  text += " (BP = " + FormatFixed(bp, 3) + " ratio = " + FormatFixed(ratio, 3) +
          " hyp_len = " + std::to_string(std::llround(sys_len)) +
          " ref_len = " + std::to_string(std::llround(ref_len)) + ")";
  return text;
}

std::string BleuScore::Format(int width) const {
  return FormatScoreText({"BLEU", score, Verbose(), ""}, width);
}

}  // namespace moebench
