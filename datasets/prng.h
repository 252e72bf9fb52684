// A small deterministic random number generator for data generation and shuffling.
// std::mt19937 is portable but std::uniform_int_distribution and friends are not: their output
// differs between standard libraries, so a corpus or a batch order drawn with them would change
// from one machine to the next. Everything here is defined bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moebench {

// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit state, passes BigCrush, trivially seedable.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t Next();
  // Uniform in [0, bound), without modulo bias (rejection sampling). `bound` must be > 0.
  uint64_t Below(uint64_t bound);
  // Uniform in [lo, hi], both inclusive; requires lo <= hi.
  int64_t Between(int64_t lo, int64_t hi);
  // Uniform in [0, 1) with 53 random bits.
  double Unit();
  // Fisher-Yates shuffle in place.
  template <typename T>
  void Shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(Below(i));
      std::swap(items[i - 1], items[j]);
    }
  }

 private:
  uint64_t state_;
};

// The SplitMix64 output function on its own: a strong 64-bit mixer.
uint64_t Mix64(uint64_t x);

// FNV-1a over the bytes of `text`, finished with Mix64: a fast, platform-independent string
// hash for bucketing (not for content addressing; use Sha256Hex for that).
uint64_t StableHash64(const std::string& text);

}  // namespace moebench
