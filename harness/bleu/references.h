// Reference streams as sacreBLEU's Metric._cache_references sees them: refs[r][i] is segment i of
// reference stream r; empty reference strings are dropped (that is how a test set gives some
// segments fewer references), and the signature's nrefs is that count, or "var" when it varies.
#pragma once

#include <string>
#include <vector>

namespace moebench {

struct SegmentReferences {
  // per_segment[i]: the non-empty references of segment i (pointers into the caller's refs).
  std::vector<std::vector<const std::string*>> per_segment;
  // The signature's nrefs value: a number, or "var".
  std::string nrefs;
};

// Checks that every stream has `num_hypotheses` segments and that every segment has at least one
// non-empty reference; `caller` names the function in the error message.
SegmentReferences GatherReferences(const std::vector<std::vector<std::string>>& refs,
                                   size_t num_hypotheses, const std::string& caller);

}  // namespace moebench
