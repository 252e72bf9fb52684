// Paired bootstrap resampling (Koehn 2004) between a baseline and other systems, following
// sacreBLEU 2.x's `--paired-bs` (significance.py, _paired_bs_test):
//   1. draw num_samples resamples of the segment indices (with replacement); every system and the
//      baseline are scored on the same resamples, from per-segment statistics (never re-tokenised);
//   2. mean and 95% CI of each system's resampled scores: CI = (s[n - n/40 - 1] - s[n/40]) / 2
//      over the sorted scores (sacreBLEU's estimate_ci);
//   3. the p-value, by one of two rules (see Note [Paired bootstrap p-value]).
// The random indices come from our own PRNG (SplitMix64 seeding xoshiro256**, unbiased bounded
// draws), so results are identical on every machine for a seed, but not numerically equal to
// sacreBLEU's, which draws with numpy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harness/bleu/bleu.h"
#include "harness/bleu/chrf.h"
#include "harness/bleu/segment_stats.h"

namespace moebench {

// Note [Paired bootstrap p-value]
// kSacreBleu (default, what `sacrebleu --paired-bs` computes): a two-sided test of the absolute
//   difference. d = |score(sys) - score(base)|; per resample d_i = |sys_i - base_i|; the d_i are
//   centred on their mean (the null hypothesis of no difference) and
//   p = (#{i : d_i - mean(d) > d} + 1) / (n + 1).
//   Quirk inherited from sacreBLEU: a system identical to the baseline gets p = 1 / (n + 1),
//   because every centred difference is exactly 0 and none is > 0.
// kOneSided: Koehn's one-sided test that the system is better than the baseline:
//   p = (#{i : sys_i <= base_i} + 1) / (n + 1); identical systems get p = 1.
enum class BootstrapPValue { kSacreBleu, kOneSided };

// Note [Stratified bootstrap]
// The headline BLEU of a multilingual test set is the mean of the per-language BLEU
// (per_language.h), a statistic of a stratified sample: each language's sentences were chosen
// for that language, and the headline weighs every language equally whatever its sentence
// count. Resampling all sentences together would let a resample hold 7 German sentences and 1
// French where the test set has 4 and 4, or miss a language entirely (the scorer then averages
// the languages present), so the resampled headlines would vary with the language mix, which is
// fixed by design, and not only with the sentences: the interval comes out too wide and the test
// too weak. The bootstrap of a stratified sample resamples within each stratum: with `strata` set,
// every resample draws, for each stratum in order, as many segments as it has, with
// replacement, from that stratum only. With one stratum holding every segment in order the
// draws are those of the unstratified bootstrap (one Below(n) per segment), so a test set of one
// language gives the same numbers either way. PairedBootstrap{Bleu,Chrf}ByLanguage stratify by
// language, and so do what uses them: `moebench bleu --langs --paired-bs`, `moebench compare`,
// `moebench diff --bleu` and the report's BLEU claims.
struct PairedBootstrapOptions {
  int num_samples = 1000;
  uint64_t seed = 12345;
  BootstrapPValue p_value = BootstrapPValue::kSacreBleu;
  // Empty: resample all segments together. Else a partition of the segment indices (each in
  // exactly one stratum; empty strata are allowed); see Note [Stratified bootstrap].
  std::vector<std::vector<size_t>> strata;
};

struct BootstrapSystemResult {
  double score = 0;               // on the full corpus
  double mean = 0;                // mean over the resamples
  double ci = 0;                  // half-width of the 95% interval
  std::optional<double> p_value;  // against the baseline; empty for the baseline itself
};

struct PairedBootstrapResult {
  std::vector<BootstrapSystemResult> systems;  // [0] is the baseline
  int num_samples = 0;
  uint64_t seed = 0;
};

// systems[0] is the baseline; every entry must have the same number of segments and width.
// Throws std::runtime_error on mismatched shapes, fewer than 2 systems or num_samples < 1.
PairedBootstrapResult PairedBootstrap(const std::vector<SegmentStats>& systems,
                                      const ScoreFromStats& score_from_stats,
                                      const PairedBootstrapOptions& opt = {});

// Conveniences: systems[s][i] is segment i of system s (systems[0] the baseline); refs as in
// CorpusBleu / CorpusChrf.
PairedBootstrapResult PairedBootstrapBleu(const std::vector<std::vector<std::string>>& systems,
                                          const std::vector<std::vector<std::string>>& refs,
                                          const BleuOptions& bleu = {},
                                          const PairedBootstrapOptions& opt = {});
PairedBootstrapResult PairedBootstrapChrf(const std::vector<std::vector<std::string>>& systems,
                                          const std::vector<std::vector<std::string>>& refs,
                                          const ChrfOptions& chrf = {},
                                          const PairedBootstrapOptions& opt = {});

// sacreBLEU's estimate_ci over bootstrap scores: the mean, and half the distance between the
// order statistics sorted[n / 40] and sorted[n - n / 40 - 1] (the 2.5% and 97.5% points).
struct MeanAndCi {
  double mean = 0;
  double ci = 0;
};
MeanAndCi EstimateCi(std::vector<double> scores);

// Deterministic generator used for the resampling, exposed for tests.
class BootstrapRng {
 public:
  explicit BootstrapRng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, bound) without modulo bias; bound > 0.
  uint64_t Below(uint64_t bound);

 private:
  uint64_t state_[4];
};

// One resample's segment indices into `indices` (num_segments of them): without strata one
// rng->Below(num_segments) per segment; with strata, stratum by stratum, strata[s][Below(|s|)]
// |s| times (Note [Stratified bootstrap]). `strata` must be a partition (CheckStrata).
void DrawResample(BootstrapRng* rng, int64_t num_segments,
                  const std::vector<std::vector<size_t>>& strata, std::vector<int64_t>* indices);

// Throws std::runtime_error unless `strata` is empty or puts each of the num_segments segment
// indices in exactly one stratum, naming the first index out of range, repeated or left out.
void CheckStrata(const std::vector<std::vector<size_t>>& strata, int64_t num_segments);

// Note [Bootstrap differences]
// `moebench bleu --paired-bs -f json` gives each system's difference to the baseline over the
// resamples: the mean of (system - baseline) and its 2.5% and 97.5% points (the order statistics
// sorted[n / 40] and sorted[n - n / 40 - 1], those of sacreBLEU's estimate_ci), a sentence-level
// 95% interval of the effect. PairedBootstrapResult keeps no per-resample scores, so the resamples
// are drawn again here by the function PairedBootstrap draws them with (ResampledScores in
// significance.cpp: BootstrapRng(seed), DrawResample per resample, strata included, every system
// scored on the same draw); the per-system means are checked against `result`'s, so options that
// are not the ones `result` came from fail loudly rather than pair these intervals with other
// resamples.
struct BootstrapDifference {
  double mean = 0;
  double lower = 0;  // 2.5% point
  double upper = 0;  // 97.5% point
};

// The resamples of PairedBootstrap drawn again, each system's difference to the baseline
// (systems[0]) over them. Throws std::logic_error when the resamples are not those of `result`
// (other options; see the Note).
std::vector<BootstrapDifference> BootstrapDifferences(const std::vector<SegmentStats>& stats,
                                                      const ScoreFromStats& scorer,
                                                      const PairedBootstrapOptions& opt,
                                                      const PairedBootstrapResult& result);

}  // namespace moebench
