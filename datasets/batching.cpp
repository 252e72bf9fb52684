#include "datasets/batching.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "datasets/prng.h"

namespace moebench {

std::vector<std::vector<int64_t>> MakeTokenBatches(const std::vector<int>& src_lens,
                                                   const std::vector<int>& tgt_lens,
                                                   int64_t max_tokens, bool shuffle,
                                                   uint64_t seed) {
  if (src_lens.size() != tgt_lens.size()) {
    throw std::runtime_error("MakeTokenBatches: " + std::to_string(src_lens.size()) +
                             " source lengths but " + std::to_string(tgt_lens.size()) +
                             " target lengths");
  }
  if (max_tokens < 1) {
    throw std::runtime_error("MakeTokenBatches: max_tokens must be >= 1, got " +
                             std::to_string(max_tokens));
  }
  const int64_t n = static_cast<int64_t>(src_lens.size());
  std::vector<int64_t> lens(n);
  for (int64_t i = 0; i < n; ++i) {
    if (src_lens[i] < 0 || tgt_lens[i] < 0) {
      throw std::runtime_error("MakeTokenBatches: negative length at example " + std::to_string(i));
    }
    lens[i] = std::max(src_lens[i], tgt_lens[i]);
  }
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return lens[a] != lens[b] ? lens[a] < lens[b] : a < b; });

  // In ascending length order the newest example is always the longest, so a batch's cost
  // after adding it is (size + 1) * its length.
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> current;
  for (int64_t index : order) {
    int64_t cost = static_cast<int64_t>(current.size() + 1) * lens[index];
    if (!current.empty() && cost > max_tokens) {
      batches.push_back(std::move(current));
      current.clear();
    }
    current.push_back(index);
  }
  if (!current.empty()) batches.push_back(std::move(current));

  if (shuffle) {
    SplitMix64 rng(seed);
    rng.Shuffle(batches);
  }
  return batches;
}

}  // namespace moebench
