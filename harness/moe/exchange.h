// The metered all-to-all as an autograd function: forward sends rows, backward sends their
// gradients back the opposite way, and both directions are counted (CommMeter).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "harness/comm/comm.h"

namespace moebench {

struct ExchangeSpec {
  int layer = 0;
  std::vector<int64_t> rows;        // [W * W] rows from src to dst
  std::vector<int64_t> wire_bytes;  // [W * W] bytes on the wire from src to dst
  bool move = true;                 // false: nothing is sent (W = 1 or a gating-dropout step)
};

// Returns the rows in destination order (see Comm::AllToAll). With move = false the tensor is
// returned as is and only same-worker bytes are counted, with zero calls.
at::Tensor MeteredExchange(Comm& comm, const at::Tensor& x, const ExchangeSpec& spec);

}  // namespace moebench
