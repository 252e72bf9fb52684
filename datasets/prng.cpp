#include "datasets/prng.h"

#include <stdexcept>

namespace moebench {

uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t SplitMix64::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix64(state_);
}

uint64_t SplitMix64::Below(uint64_t bound) {
  if (bound == 0) {
    throw std::runtime_error("SplitMix64::Below: bound must be positive");
  }
  // Accept only draws below the largest multiple of `bound`, so every residue is equally likely.
  uint64_t limit = UINT64_MAX - (UINT64_MAX % bound + 1) % bound;
  uint64_t draw = Next();
  while (draw > limit) {
    draw = Next();
  }
  return draw % bound;
}

int64_t SplitMix64::Between(int64_t lo, int64_t hi) {
  if (lo > hi) {
    throw std::runtime_error("SplitMix64::Between: lo > hi");
  }
  uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;
  if (span == 0) {  // the full 64-bit range
    return static_cast<int64_t>(Next());
  }
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + Below(span));
}

double SplitMix64::Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

uint64_t StableHash64(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix64(h);
}

}  // namespace moebench
