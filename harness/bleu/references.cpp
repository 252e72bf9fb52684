#include "harness/bleu/references.h"

#include <stdexcept>

namespace moebench {

SegmentReferences GatherReferences(const std::vector<std::vector<std::string>>& refs,
                                   size_t num_hypotheses, const std::string& caller) {
  if (refs.empty()) throw std::runtime_error(caller + ": no reference streams given");
  for (size_t r = 0; r < refs.size(); ++r) {
    if (refs[r].size() != num_hypotheses) {
      throw std::runtime_error(caller + ": reference stream " + std::to_string(r + 1) + " has " +
                               std::to_string(refs[r].size()) + " segments but there are " +
                               std::to_string(num_hypotheses) + " hypotheses");
    }
  }
  SegmentReferences gathered;
  gathered.per_segment.resize(num_hypotheses);
  for (size_t i = 0; i < num_hypotheses; ++i) {
    for (const std::vector<std::string>& stream : refs) {
      gathered.per_segment[i].push_back(&stream[i]);
    }
  }
  gathered.nrefs = std::to_string(refs.size());
  return gathered;
}

}  // namespace moebench
