// BLEU (Papineni et al. 2002) exactly as sacreBLEU 2.x computes it (version: kSacreBleuVersion).
//
// harness/bleu/ is the torch-free metric library: tokenizers (tokenizer.h), BLEU (this file),
// chrF/chrF++ (chrf.h), paired bootstrap resampling (significance.h) and sacreBLEU-style output
// (score_format.h). It depends on ICU and nlohmann_json only; the `moebench bleu` command in
// harness/cli/cmd_bleu.cpp is its only user of CLI11.
//
// Per segment: the hypothesis and each reference are lower-cased (optionally), right-stripped and
// tokenized; n-grams of orders 1..max_ngram_order are counted; matches are clipped by the
// maximum count of that n-gram over the segment's references; the reference length is the one
// closest to the hypothesis length (ties go to the shorter). Corpus BLEU sums these statistics
// over segments, then: BP = exp(1 - ref_len / sys_len) when sys_len < ref_len (0 when sys_len
// is 0), and score = BP * exp(mean log precision), with the smoothing methods
//   exp    the k-th order whose match count is 0 gets precision 100 / (2^k * total)  (default)
//   floor  a zero match count gets precision 100 * value / total                     (0.1)
//   add-k  orders n >= 2 add value to both matches and totals                        (1)
//   none   a zero precision makes the score 0
// and, with effective_order, only the orders for which the hypothesis has n-grams are averaged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/bleu/segment_stats.h"

namespace moebench {

struct BleuOptions {
  std::string tokenize = "13a";        // 13a | intl | zh | char | none | ja-mecab
  std::string smooth_method = "exp";   // exp | floor | add-k | none
  std::optional<double> smooth_value;  // floor: 0.1, add-k: 1 when unset
  bool lowercase = false;
  // sacreBLEU uses this only to silence its "looks tokenized" warning; it changes no score.
  bool force = false;
  int max_ngram_order = 4;
  bool effective_order = false;
};

struct BleuScore {
  double score = 0;  // 0..100
  double bp = 0;
  double sys_len = 0;
  double ref_len = 0;
  double ratio = 0;                // sys_len / ref_len, 0 when ref_len is 0
  std::vector<double> precisions;  // percent, one per order
  // Raw clipped matches and hypothesis n-gram totals per order. (sacreBLEU's own counts/totals
  // include the add-k increments; these never do.)
  std::vector<int64_t> counts, totals;
  std::string signature;

  // "67.8/40.1/25.0/16.7 (BP = 1.000 ratio = 1.020 hyp_len = 51 ref_len = 50)"
  std::string Verbose() const;
  // sacreBLEU's str(score): "BLEU = 34.56 67.8/40.1/25.0/16.7 (BP = 1.000 ratio = 1.020 ...)"
  std::string Format(int width = 2) const;
};

// hyps[i] is segment i; refs[r][i] is segment i of reference stream r. An empty reference is a
// reference of 0 tokens, as in sacreBLEU >= 2.0.1: it adds 0 to ref_len when it is the closest
// length, and the hypothesis n-grams of its segment add to the totals with no matches. Throws
// std::runtime_error on mismatched lengths or an unknown tokenizer or smoothing method.
BleuScore CorpusBleu(const std::vector<std::string>& hyps,
                     const std::vector<std::vector<std::string>>& refs,
                     const BleuOptions& opt = {});

// One segment against its references, with effective order always on, like sacreBLEU's
// sentence_bleu() and `sacrebleu --sentence-level` (use CorpusBleu on one segment to get it off).
BleuScore SentenceBleu(const std::string& hyp, const std::vector<std::string>& refs,
                       BleuOptions opt = {});

// ---- building blocks (the bootstrap test and the CLI use these) -------------------------------

// Per-segment statistics: [hyp_len, ref_len, matches[0..N), totals[0..N)], N = max order.
SegmentStats BleuSegmentStats(const std::vector<std::string>& hyps,
                              const std::vector<std::vector<std::string>>& refs,
                              const BleuOptions& opt = {});

// The score from summed statistics (layout as above); leaves `signature` empty.
BleuScore BleuFromStats(const std::vector<int64_t>& stats, const BleuOptions& opt);

// "nrefs:<nrefs>|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1" (tok:ja-mecab-0.996-IPA
// for ja-mecab: see TokenizerSignature).
std::string BleuSignature(const BleuOptions& opt, const std::string& nrefs);

// Throws std::runtime_error unless the options name a known tokenizer and smoothing method and
// a positive n-gram order.
void CheckBleuOptions(const BleuOptions& opt);

}  // namespace moebench
