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
  size_t first_count = 0;
  bool variable = false;
  for (size_t i = 0; i < num_hypotheses; ++i) {
    std::vector<const std::string*>& segment = gathered.per_segment[i];
    for (const std::vector<std::string>& stream : refs) {
      if (!stream[i].empty()) segment.push_back(&stream[i]);
    }
    if (segment.empty()) {
      // sacreBLEU raises here too ("Empty or `None` reference sentence found.").
      throw std::runtime_error(caller + ": segment " + std::to_string(i + 1) +
                               " has only empty references");
    }
    if (i == 0) {
      first_count = segment.size();
    } else if (segment.size() != first_count) {
      variable = true;
    }
  }
  gathered.nrefs =
      variable ? "var" : std::to_string(num_hypotheses == 0 ? refs.size() : first_count);
  return gathered;
}

}  // namespace moebench
