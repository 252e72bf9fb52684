// Reference streams as sacreBLEU 2.3.1's Metric._cache_references sees them: refs[r][i] is
// segment i of reference stream r. An empty reference string is a reference like any other, of
// 0 tokens (sacreBLEU >= 2.0.1, its #161; 2.0.0 dropped them and refused a segment left without
// one). sacreBLEU drops only `None` references, which have no counterpart here, so the
// signature's nrefs is always the number of streams.
#pragma once

#include <string>
#include <vector>

namespace moebench {

struct SegmentReferences {
  // per_segment[i]: the references of segment i (pointers into the caller's refs).
  std::vector<std::vector<const std::string*>> per_segment;
  // The signature's nrefs value.
  std::string nrefs;
};

// Checks that there is at least one stream and that every stream has `num_hypotheses` segments;
// `caller` names the function in the error message.
SegmentReferences GatherReferences(const std::vector<std::vector<std::string>>& refs,
                                   size_t num_hypotheses, const std::string& caller);

}  // namespace moebench
