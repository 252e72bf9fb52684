#include "harness/bleu/segment_stats.h"

namespace moebench {

std::vector<int64_t> SegmentStats::Sum() const {
  std::vector<int64_t> total(static_cast<size_t>(width), 0);
  for (int64_t i = 0; i < num_segments; ++i) {
    const int64_t* row = Row(i);
    for (int64_t j = 0; j < width; ++j) total[static_cast<size_t>(j)] += row[j];
  }
  return total;
}

}  // namespace moebench
