// Which split a sentence belongs to, decided by a hash of its source side alone, so a source
// sentence (and every translation of it) lands in exactly one split, whatever the recipe, seed
// or language set.
#pragma once

#include <string>

namespace moebench {

enum class Split { kTrain, kValid, kTest };

const char* SplitName(Split split);

// Valid and test get `valid_fraction` and `test_fraction` of the hash space (each in [0, 1],
// summing to at most 1); train gets the rest. Throws std::runtime_error otherwise.
Split SplitForSource(const std::string& src, double valid_fraction, double test_fraction);

}  // namespace moebench
