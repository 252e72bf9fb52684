#include "harness/bleu/significance.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace moebench {

namespace {

uint64_t SplitMix64Next(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

double PValue(const std::vector<double>& baseline_samples,
              const std::vector<double>& system_samples, double baseline_score, double system_score,
              BootstrapPValue rule) {
  const size_t n = system_samples.size();
  size_t count = 0;
  if (rule == BootstrapPValue::kOneSided) {
    for (size_t i = 0; i < n; ++i) count += system_samples[i] <= baseline_samples[i];
  } else {
    const double real_difference = std::fabs(baseline_score - system_score);
    std::vector<double> diffs(n);
    double mean = 0;
    for (size_t i = 0; i < n; ++i) {
      diffs[i] = std::fabs(system_samples[i] - baseline_samples[i]);
      mean += diffs[i];
    }
    mean /= static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) count += diffs[i] - mean > real_difference;
  }
  return static_cast<double>(count + 1) / static_cast<double>(n + 1);
}

}  // namespace

MeanAndCi EstimateCi(std::vector<double> scores) {
  if (scores.empty()) throw std::runtime_error("EstimateCi: no scores");
  std::sort(scores.begin(), scores.end());
  const size_t n = scores.size();
  const size_t lower = n / 40;
  const size_t upper = n - lower - 1;
  MeanAndCi result;
  result.ci = 0.5 * (scores[upper] - scores[lower]);
  double sum = 0;
  for (double s : scores) sum += s;
  result.mean = sum / static_cast<double>(n);
  return result;
}

BootstrapRng::BootstrapRng(uint64_t seed) {
  uint64_t sm = seed;
  for (uint64_t& word : state_) word = SplitMix64Next(&sm);
}

uint64_t BootstrapRng::Next() {
  // xoshiro256** (Blackman and Vigna 2018).
  const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

uint64_t BootstrapRng::Below(uint64_t bound) {
  if (bound == 0) throw std::runtime_error("BootstrapRng::Below: bound must be > 0");
  // Reject the lowest (2^64 mod bound) values so every residue is equally likely.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = Next();
    if (r >= threshold) return r % bound;
  }
}

void CheckStrata(const std::vector<std::vector<size_t>>& strata, int64_t num_segments) {
  if (strata.empty()) return;
  std::vector<char> seen(static_cast<size_t>(num_segments), 0);
  for (size_t s = 0; s < strata.size(); ++s) {
    for (size_t index : strata[s]) {
      if (index >= seen.size()) {
        throw std::runtime_error("bootstrap strata: stratum " + std::to_string(s) +
                                 " holds segment " + std::to_string(index) + " but there are " +
                                 std::to_string(num_segments) + " segments");
      }
      if (seen[index]) {
        throw std::runtime_error("bootstrap strata: segment " + std::to_string(index) +
                                 " is in more than one stratum (again in stratum " +
                                 std::to_string(s) + ")");
      }
      seen[index] = 1;
    }
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) {
      throw std::runtime_error("bootstrap strata: segment " + std::to_string(i) +
                               " is in no stratum");
    }
  }
}

// See Note [Stratified bootstrap] in significance.h.
void DrawResample(BootstrapRng* rng, int64_t num_segments,
                  const std::vector<std::vector<size_t>>& strata, std::vector<int64_t>* indices) {
  indices->resize(static_cast<size_t>(num_segments));
  if (strata.empty()) {
    for (int64_t& index : *indices) {
      index = static_cast<int64_t>(rng->Below(static_cast<uint64_t>(num_segments)));
    }
    return;
  }
  size_t next = 0;
  for (const std::vector<size_t>& stratum : strata) {
    for (size_t j = 0; j < stratum.size(); ++j) {
      (*indices)[next++] = static_cast<int64_t>(stratum[rng->Below(stratum.size())]);
    }
  }
}

namespace {

void CheckShapes(const std::vector<SegmentStats>& systems, const PairedBootstrapOptions& opt) {
  if (systems.size() < 2) {
    throw std::runtime_error("PairedBootstrap: needs a baseline and at least one system, got " +
                             std::to_string(systems.size()) + " system(s)");
  }
  if (opt.num_samples < 1) {
    throw std::runtime_error("PairedBootstrap: num_samples must be >= 1, got " +
                             std::to_string(opt.num_samples));
  }
  const int64_t num_segments = systems[0].num_segments;
  const int64_t width = systems[0].width;
  for (size_t s = 1; s < systems.size(); ++s) {
    if (systems[s].num_segments != num_segments || systems[s].width != width) {
      throw std::runtime_error("PairedBootstrap: system " + std::to_string(s) + " has " +
                               std::to_string(systems[s].num_segments) + " segments x " +
                               std::to_string(systems[s].width) +
                               " statistics but the baseline has " + std::to_string(num_segments) +
                               " x " + std::to_string(width));
    }
  }
  CheckStrata(opt.strata, num_segments);
}

// scores[s][b]: system s scored on resample b. The one place the resamples are drawn, for
// PairedBootstrap and BootstrapDifferences alike (Note [Bootstrap differences]).
std::vector<std::vector<double>> ResampledScores(const std::vector<SegmentStats>& systems,
                                                 const ScoreFromStats& score_from_stats,
                                                 const PairedBootstrapOptions& opt) {
  CheckShapes(systems, opt);
  const int64_t num_segments = systems[0].num_segments;
  const int64_t width = systems[0].width;
  const size_t num_samples = static_cast<size_t>(opt.num_samples);
  std::vector<std::vector<double>> scores(systems.size(), std::vector<double>(num_samples));
  std::vector<int64_t> indices;
  std::vector<int64_t> sum(static_cast<size_t>(width));
  BootstrapRng rng(opt.seed);
  for (size_t b = 0; b < num_samples; ++b) {
    DrawResample(&rng, num_segments, opt.strata, &indices);
    for (size_t s = 0; s < systems.size(); ++s) {
      std::fill(sum.begin(), sum.end(), 0);
      for (int64_t index : indices) {
        const int64_t* row = systems[s].Row(index);
        for (int64_t j = 0; j < width; ++j) sum[static_cast<size_t>(j)] += row[j];
      }
      scores[s][b] = score_from_stats(sum);
    }
  }
  return scores;
}

}  // namespace

PairedBootstrapResult PairedBootstrap(const std::vector<SegmentStats>& systems,
                                      const ScoreFromStats& score_from_stats,
                                      const PairedBootstrapOptions& opt) {
  const std::vector<std::vector<double>> samples = ResampledScores(systems, score_from_stats, opt);
  PairedBootstrapResult result;
  result.num_samples = opt.num_samples;
  result.seed = opt.seed;
  for (size_t s = 0; s < systems.size(); ++s) {
    BootstrapSystemResult system;
    system.score = score_from_stats(systems[s].Sum());
    const MeanAndCi estimate = EstimateCi(samples[s]);
    system.mean = estimate.mean;
    system.ci = estimate.ci;
    if (s > 0) {
      system.p_value =
          PValue(samples[0], samples[s], result.systems[0].score, system.score, opt.p_value);
    }
    result.systems.push_back(system);
  }
  return result;
}

PairedBootstrapResult PairedBootstrapBleu(const std::vector<std::vector<std::string>>& systems,
                                          const std::vector<std::vector<std::string>>& refs,
                                          const BleuOptions& bleu,
                                          const PairedBootstrapOptions& opt) {
  std::vector<SegmentStats> stats;
  for (const std::vector<std::string>& hyps : systems) {
    stats.push_back(BleuSegmentStats(hyps, refs, bleu));
  }
  return PairedBootstrap(
      stats, [&bleu](const std::vector<int64_t>& sum) { return BleuFromStats(sum, bleu).score; },
      opt);
}

PairedBootstrapResult PairedBootstrapChrf(const std::vector<std::vector<std::string>>& systems,
                                          const std::vector<std::vector<std::string>>& refs,
                                          const ChrfOptions& chrf,
                                          const PairedBootstrapOptions& opt) {
  std::vector<SegmentStats> stats;
  for (const std::vector<std::string>& hyps : systems) {
    stats.push_back(ChrfSegmentStats(hyps, refs, chrf));
  }
  return PairedBootstrap(
      stats, [&chrf](const std::vector<int64_t>& sum) { return ChrfFromStats(sum, chrf); }, opt);
}

// See Note [Bootstrap differences] in significance.h.
std::vector<BootstrapDifference> BootstrapDifferences(const std::vector<SegmentStats>& stats,
                                                      const ScoreFromStats& scorer,
                                                      const PairedBootstrapOptions& opt,
                                                      const PairedBootstrapResult& result) {
  const std::vector<std::vector<double>> samples = ResampledScores(stats, scorer, opt);
  const size_t num_systems = stats.size();
  const size_t n = static_cast<size_t>(opt.num_samples);
  std::vector<BootstrapDifference> out(num_systems);
  for (size_t s = 0; s < num_systems; ++s) {
    if (EstimateCi(samples[s]).mean != result.systems[s].mean) {
      throw std::logic_error(
          "--paired-bs: the resamples drawn for the differences are not those of the result "
          "given (other options; see Note [Bootstrap differences] in "
          "harness/bleu/significance.h)");
    }
    std::vector<double> diffs(n);
    double total = 0;
    for (size_t b = 0; b < n; ++b) {
      diffs[b] = samples[s][b] - samples[0][b];
      total += diffs[b];
    }
    std::sort(diffs.begin(), diffs.end());
    out[s].mean = total / static_cast<double>(n);
    out[s].lower = diffs[n / 40];
    out[s].upper = diffs[n - n / 40 - 1];
  }
  return out;
}

}  // namespace moebench
