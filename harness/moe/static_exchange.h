// The static-shape path's exchange (Note [Static-shape path] in harness/moe/moe_layer.cpp): the
// padded [W, E, C, d] send buffer to the experts' [E, W, C, d] input and back, as an autograd
// function, metered without reading the routed rows on the host: the wire bytes and the calls
// are known from the capacities, the logical bytes are summed on the device (StaticTally) and
// reach the meter when the tally is flushed.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "harness/comm/comm.h"

namespace moebench {

// What the static path counted on the device since the last flush.
struct StaticTally {
  at::Tensor fwd, bwd;     // [W * W] int64: logical rows src -> dst, by the exchange's phase
  at::Tensor expert_rows;  // [W] int64: the rows each worker's experts computed (kept rows)
  int64_t row_bytes = 0;   // bytes per row of the exchanges counted
  bool pending() const { return fwd.defined(); }
  void Add(bool backward, const at::Tensor& rows);  // rows: [W * W] int64 on the device
};

struct StaticExchangeSpec {
  int layer = 0;
  int64_t row_bytes = 0;
  std::vector<int64_t> wire_bytes;  // [W * W] of the dispatch direction
  bool move = true;                 // false: nothing crosses workers (W = 1, gating dropout)
  at::Tensor rows;                  // [W * W] int64 device: kept rows src -> dst (dispatch)
  StaticTally* tally = nullptr;
};

// to_experts: x [W, E, C, d] (source-major, as W workers' send buffers) -> [E, W, C, d] (each
// expert's rows from every source); else the way back. Counted as one all-to-all (calls 1 when
// spec.move) in phase "fwd", its gradient in phase "bwd", like MeteredExchange. One process
// playing every worker only (a permutation of the buffer).
at::Tensor StaticExchange(Comm& comm, const at::Tensor& x, const StaticExchangeSpec& spec,
                          bool to_experts);

}  // namespace moebench
