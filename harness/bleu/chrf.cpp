#include "harness/bleu/chrf.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "harness/bleu/references.h"
#include "harness/bleu/score_format.h"
#include "harness/bleu/signature.h"
#include "harness/bleu/unicode_text.h"

namespace moebench {

namespace {

// sacreBLEU's epsilon for orders without n-grams under eps_smoothing.
constexpr double kEpsilon = 1e-16;

using NgramCounts = std::unordered_map<std::u32string, int64_t>;

// Python's string.punctuation, the set chrF++ splits off word edges.
bool IsAsciiPunctuation(char32_t c) {
  return (c >= U'!' && c <= U'/') || (c >= U':' && c <= U'@') || (c >= U'[' && c <= U'`') ||
         (c >= U'{' && c <= U'~');
}

// sacreBLEU's CHRF._remove_punctuation: one punctuation mark is split off the end of a word, or
// else off its start ("(hi)" becomes "(hi" and ")", as in sacreBLEU's issue #124).
std::vector<std::u32string> WordsWithPunctuationSplit(const std::u32string& text) {
  std::vector<std::u32string> words;
  for (const std::u32string& w : SplitWhitespace(text)) {
    if (w.size() == 1) {
      words.push_back(w);
    } else if (IsAsciiPunctuation(w.back())) {
      words.push_back(w.substr(0, w.size() - 1));
      words.push_back(w.substr(w.size() - 1));
    } else if (IsAsciiPunctuation(w.front())) {
      words.push_back(w.substr(0, 1));
      words.push_back(w.substr(1));
    } else {
      words.push_back(w);
    }
  }
  return words;
}

// All n-gram counters of one segment: character orders 1..char_order, then word orders.
std::vector<NgramCounts> ExtractNgrams(const std::string& segment, const ChrfOptions& opt) {
  const std::u32string text = DecodeUtf8(opt.lowercase ? LowerUnicode(segment) : segment);
  std::vector<NgramCounts> all;

  std::u32string chars;
  if (opt.whitespace) {
    chars = text;
  } else {
    for (const std::u32string& field : SplitWhitespace(text)) chars += field;
  }
  for (int n = 1; n <= opt.char_order; ++n) {
    NgramCounts counts;
    for (size_t i = 0; i + n <= chars.size(); ++i) ++counts[chars.substr(i, n)];
    all.push_back(std::move(counts));
  }

  if (opt.word_order > 0) {
    const std::vector<std::u32string> words = WordsWithPunctuationSplit(text);
    for (int n = 1; n <= opt.word_order; ++n) {
      NgramCounts counts;
      for (size_t i = 0; i + n <= words.size(); ++i) {
        std::u32string key = words[i];
        for (int k = 1; k < n; ++k) key += U' ' + words[i + k];
        ++counts[key];
      }
      all.push_back(std::move(counts));
    }
  }
  return all;
}

void CheckChrfOptions(const ChrfOptions& opt) {
  if (opt.char_order < 0 || opt.word_order < 0 || opt.char_order + opt.word_order == 0) {
    throw std::runtime_error(
        "chrF needs char_order >= 0, word_order >= 0 and a positive sum, got " +
        std::to_string(opt.char_order) + " and " + std::to_string(opt.word_order));
  }
  if (!(opt.beta >= 0)) {
    throw std::runtime_error("chrF beta must be >= 0, got " + FormatFixed(opt.beta, 3));
  }
}

}  // namespace

double ChrfFromStats(const std::vector<int64_t>& stats, const ChrfOptions& opt) {
  const int order = opt.char_order + opt.word_order;
  if (stats.size() != static_cast<size_t>(3 * order)) {
    throw std::runtime_error("ChrfFromStats: expected " + std::to_string(3 * order) +
                             " statistics, got " + std::to_string(stats.size()));
  }
  const double factor = opt.beta * opt.beta;
  double eps_score = 0;
  double avg_prec = 0;
  double avg_rec = 0;
  int effective_order = 0;
  for (int i = 0; i < order; ++i) {
    const double n_hyp = static_cast<double>(stats[3 * i]);
    const double n_ref = static_cast<double>(stats[3 * i + 1]);
    const double n_match = static_cast<double>(stats[3 * i + 2]);
    const double prec = n_hyp > 0 ? n_match / n_hyp : kEpsilon;
    const double rec = n_ref > 0 ? n_match / n_ref : kEpsilon;
    const double denom = factor * prec + rec;
    eps_score += denom > 0 ? (1 + factor) * prec * rec / denom : kEpsilon;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (opt.eps_smoothing) return 100 * eps_score / order;
  if (effective_order == 0) return 0.0;
  avg_prec /= effective_order;
  avg_rec /= effective_order;
  if (avg_prec + avg_rec == 0) return 0.0;
  return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
}

SegmentStats ChrfSegmentStats(const std::vector<std::string>& hyps,
                              const std::vector<std::vector<std::string>>& refs,
                              const ChrfOptions& opt) {
  CheckChrfOptions(opt);
  const SegmentReferences gathered = GatherReferences(refs, hyps.size(), "chrF");
  const int order = opt.char_order + opt.word_order;
  SegmentStats stats;
  stats.num_segments = static_cast<int64_t>(hyps.size());
  stats.width = 3 * order;
  stats.values.reserve(static_cast<size_t>(stats.num_segments * stats.width));

  for (size_t i = 0; i < hyps.size(); ++i) {
    const std::vector<NgramCounts> hyp_ngrams = ExtractNgrams(hyps[i], opt);
    std::vector<int64_t> best_stats;
    double best_f = -1.0;
    for (const std::string* ref : gathered.per_segment[i]) {
      const std::vector<NgramCounts> ref_ngrams = ExtractNgrams(*ref, opt);
      std::vector<int64_t> ref_stats;
      for (int k = 0; k < order; ++k) {
        int64_t hyp_count = 0;
        int64_t ref_count = 0;
        int64_t match_count = 0;
        for (const auto& entry : hyp_ngrams[k]) {
          hyp_count += entry.second;
          const auto found = ref_ngrams[k].find(entry.first);
          if (found != ref_ngrams[k].end()) match_count += std::min(entry.second, found->second);
        }
        for (const auto& entry : ref_ngrams[k]) ref_count += entry.second;
        // Hypothesis n-grams do not count for an order the reference does not have.
        ref_stats.push_back(ref_ngrams[k].empty() ? 0 : hyp_count);
        ref_stats.push_back(ref_count);
        ref_stats.push_back(match_count);
      }
      const double f = ChrfFromStats(ref_stats, opt);
      if (f > best_f) {
        best_f = f;
        best_stats = ref_stats;
      }
    }
    stats.values.insert(stats.values.end(), best_stats.begin(), best_stats.end());
  }
  return stats;
}

std::string ChrfName(const ChrfOptions& opt) {
  std::string beta;
  if (opt.beta == std::floor(opt.beta) && std::fabs(opt.beta) < 1e15) {
    beta = std::to_string(static_cast<long long>(opt.beta));
  } else {
    beta = FormatFixed(opt.beta, 2);
  }
  return "chrF" + beta + std::string(static_cast<size_t>(std::max(0, opt.word_order)), '+');
}

std::string ChrfSignature(const ChrfOptions& opt, const std::string& nrefs) {
  return BuildSignature(nrefs, {{"case", opt.lowercase ? "lc" : "mixed"},
                                {"eff", opt.eps_smoothing ? "no" : "yes"},
                                {"nc", std::to_string(opt.char_order)},
                                {"nw", std::to_string(opt.word_order)},
                                {"space", opt.whitespace ? "yes" : "no"}});
}

ChrfScore CorpusChrf(const std::vector<std::string>& hyps,
                     const std::vector<std::vector<std::string>>& refs, const ChrfOptions& opt) {
  const SegmentStats stats = ChrfSegmentStats(hyps, refs, opt);
  ChrfScore score;
  score.score = ChrfFromStats(stats.Sum(), opt);
  score.signature = ChrfSignature(opt, GatherReferences(refs, hyps.size(), "chrF").nrefs);
  score.name = ChrfName(opt);
  return score;
}

ChrfScore SentenceChrf(const std::string& hyp, const std::vector<std::string>& refs,
                       const ChrfOptions& opt) {
  std::vector<std::vector<std::string>> streams;
  for (const std::string& ref : refs) streams.push_back({ref});
  return CorpusChrf({hyp}, streams, opt);
}

std::string ChrfScore::Format(int width) const {
  return FormatScoreText({name, score, "", ""}, width);
}

}  // namespace moebench
