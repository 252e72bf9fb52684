// Per-segment sufficient statistics: the integer counts a corpus-level metric sums over segments
// before turning them into a score. Keeping them per segment lets the bootstrap resample a corpus
// by summing rows, without re-tokenising anything.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace moebench {

struct SegmentStats {
  int64_t num_segments = 0;
  int64_t width = 0;            // statistics per segment
  std::vector<int64_t> values;  // row-major, num_segments * width

  const int64_t* Row(int64_t segment) const { return values.data() + segment * width; }
  // Column sums: the corpus statistics.
  std::vector<int64_t> Sum() const;
};

// Turns summed statistics into a score (BLEU, chrF, ...).
using ScoreFromStats = std::function<double(const std::vector<int64_t>& summed)>;

}  // namespace moebench
