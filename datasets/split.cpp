#include "datasets/split.h"

#include <stdexcept>

#include "datasets/prng.h"

namespace moebench {

const char* SplitName(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kValid:
      return "valid";
    case Split::kTest:
      return "test";
  }
  return "?";
}

Split SplitForSource(const std::string& src, double valid_fraction, double test_fraction) {
  if (!(valid_fraction >= 0 && test_fraction >= 0 && valid_fraction + test_fraction <= 1)) {
    throw std::runtime_error(
        "SplitForSource: valid and test fractions must be in [0, 1] and sum to at most 1 (got " +
        std::to_string(valid_fraction) + ", " + std::to_string(test_fraction) + ")");
  }
  // 53 bits of the hash as a point in [0, 1): test takes the bottom, valid the next slice.
  double u = static_cast<double>(StableHash64(src) >> 11) * 0x1.0p-53;
  if (u < test_fraction) {
    return Split::kTest;
  }
  if (u < test_fraction + valid_fraction) {
    return Split::kValid;
  }
  return Split::kTrain;
}

}  // namespace moebench
