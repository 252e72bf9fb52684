// Worker layout: W expert-parallel workers grouped into nodes of `workers_per_node`.
// Expert e lives on worker e / (E / W); token blocks are contiguous (see Note [Token blocks]).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace moebench {

enum class TrafficClass { kSameWorker = 0, kSameNode = 1, kOtherNode = 2 };
constexpr int kNumTrafficClasses = 3;

struct Topology {
  int workers = 1;
  int workers_per_node = 1;

  int NodeOf(int worker) const { return worker / workers_per_node; }
  int num_nodes() const { return (workers + workers_per_node - 1) / workers_per_node; }

  TrafficClass Classify(int src, int dst) const {
    if (src == dst) return TrafficClass::kSameWorker;
    if (NodeOf(src) == NodeOf(dst)) return TrafficClass::kSameNode;
    return TrafficClass::kOtherNode;
  }

  void Validate(int num_experts) const {
    if (workers < 1) throw std::invalid_argument("topology: workers must be >= 1");
    if (workers_per_node < 1 || workers_per_node > workers) {
      throw std::invalid_argument("topology: workers_per_node must be in [1, workers]; got " +
                                  std::to_string(workers_per_node));
    }
    if (num_experts % workers != 0) {
      throw std::invalid_argument("topology: num_experts (" + std::to_string(num_experts) +
                                  ") must be a multiple of workers (" + std::to_string(workers) +
                                  ")");
    }
  }
};

// Note [Token blocks]: with W virtual workers in one process, the T tokens of a layer are split
// into W contiguous blocks; block w is [w*T/W, (w+1)*T/W) (integer division), so every worker
// holds floor or ceil of T/W tokens.
inline int64_t BlockBegin(int64_t total, int blocks, int b) { return total * b / blocks; }

// When the layer's tokens are B whole sentences of L tokens each (a flattened [B, L] batch), the
// blocks are whole sentences: block w holds sentences [B*w/W, B*(w+1)/W), so that W ranks that
// each hold their own sentences of the batch see exactly the tokens of W virtual workers. With
// fewer sentences than blocks (a short last batch in evaluation), token blocks instead, so that
// no block is empty (ranks never see such a batch in training: see RankSlice).
inline int64_t GroupBegin(int64_t total, int64_t per_sentence, int blocks, int b) {
  if (per_sentence <= 1 || total % per_sentence != 0 || total / per_sentence < blocks) {
    return BlockBegin(total, blocks, b);
  }
  return BlockBegin(total / per_sentence, blocks, b) * per_sentence;
}

}  // namespace moebench
