// chrF (Popović 2015) and chrF++ (Popović 2017) exactly as sacreBLEU 2.x computes them.
//
// Character n-grams of orders 1..char_order are taken from the text with all whitespace removed
// (unless `whitespace`); chrF++ (word_order > 0) adds word n-grams of orders 1..word_order over
// words with one leading or trailing ASCII punctuation mark split off. Per order the statistics
// are [hypothesis n-grams (0 when the reference has none), reference n-grams, matches]; with
// several references a segment keeps the statistics of the reference with the best F-score.
// Corpus chrF sums them and, by default (sacreBLEU's "eff:yes"), averages precision and recall
// over the orders where both sides have n-grams before taking
// F_beta = (1 + beta^2) P R / (beta^2 P + R). With eps_smoothing it instead averages the
// per-order F-scores over all orders, an empty order counting 1e-16 (chrF++.py, NLTK, Moses).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/bleu/segment_stats.h"

namespace moebench {

struct ChrfOptions {
  int char_order = 6;
  int word_order = 0;  // 2 gives chrF++
  double beta = 2;
  bool lowercase = false;
  bool whitespace = false;  // keep whitespace inside character n-grams
  bool eps_smoothing = false;
};

struct ChrfScore {
  double score = 0;  // 0..100
  std::string signature;
  std::string name;  // "chrF2", or "chrF2++" for word_order 2 (one '+' per word order)

  // sacreBLEU's str(score): "chrF2 = 52.32"
  std::string Format(int width = 2) const;
};

// hyps[i] is segment i; refs[r][i] is segment i of reference stream r. An empty reference has no
// n-grams, so its segment adds nothing (as in sacreBLEU >= 2.0.1). Throws std::runtime_error on
// mismatched lengths or bad orders.
ChrfScore CorpusChrf(const std::vector<std::string>& hyps,
                     const std::vector<std::vector<std::string>>& refs,
                     const ChrfOptions& opt = {});

ChrfScore SentenceChrf(const std::string& hyp, const std::vector<std::string>& refs,
                       const ChrfOptions& opt = {});

// ---- building blocks
// ------------------------------------------------------------------------------

// Per-segment statistics: for each order (character orders first, then word orders)
// [hyp n-grams, ref n-grams, matches].
SegmentStats ChrfSegmentStats(const std::vector<std::string>& hyps,
                              const std::vector<std::vector<std::string>>& refs,
                              const ChrfOptions& opt = {});

// The score (0..100) from summed statistics.
double ChrfFromStats(const std::vector<int64_t>& stats, const ChrfOptions& opt);

// "nrefs:<nrefs>|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1"
std::string ChrfSignature(const ChrfOptions& opt, const std::string& nrefs);

// "chrF2", "chrF2++", ...
std::string ChrfName(const ChrfOptions& opt);

}  // namespace moebench
