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
  // A rank of a process group counts only the rows it sends itself (its row of the matrix);
  // the trainer sums the counters over ranks. -1: this process plays every source.
  int only_source = -1;
};

// Returns the rows in destination order (see Comm::AllToAll). With move = false the tensor is
// returned as is and only same-worker bytes are counted, with zero calls.
at::Tensor MeteredExchange(Comm& comm, const at::Tensor& x, const ExchangeSpec& spec);

}  // namespace moebench
