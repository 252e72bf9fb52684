#include "harness/comm/local_comm.h"

#include <stdexcept>
#include <string>

namespace moebench {

std::vector<int64_t> TransposeSquare(const std::vector<int64_t>& m, int w) {
  std::vector<int64_t> t(m.size());
  for (int i = 0; i < w; ++i) {
    for (int j = 0; j < w; ++j) t[j * w + i] = m[i * w + j];
  }
  return t;
}

LocalComm::LocalComm(Topology topology) : topology_(topology) {
  if (topology_.workers < 1 || topology_.workers_per_node < 1) {
    throw std::invalid_argument("LocalComm: workers and workers_per_node must be >= 1");
  }
}

at::Tensor LocalComm::AllToAll(const at::Tensor& send, const std::vector<int64_t>& rows) {
  const int w = topology_.workers;
  if (rows.size() != static_cast<size_t>(w * w)) {
    throw std::logic_error("LocalComm::AllToAll: rows must have W*W entries");
  }
  if (w == 1) return send;
  std::vector<int64_t> offset(rows.size() + 1, 0);
  for (size_t i = 0; i < rows.size(); ++i) offset[i + 1] = offset[i] + rows[i];
  if (offset.back() != send.size(0)) {
    throw std::logic_error("LocalComm::AllToAll: rows sum to " + std::to_string(offset.back()) +
                           " but the buffer has " + std::to_string(send.size(0)));
  }
  std::vector<at::Tensor> blocks;
  blocks.reserve(rows.size());
  for (int dst = 0; dst < w; ++dst) {
    for (int src = 0; src < w; ++src) {
      const int64_t n = rows[src * w + dst];
      if (n > 0) blocks.push_back(send.narrow(0, offset[src * w + dst], n));
    }
  }
  if (blocks.empty()) return send.narrow(0, 0, 0);
  return at::cat(blocks, 0);
}

}  // namespace moebench
