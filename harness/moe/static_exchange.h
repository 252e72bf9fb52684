// The static-shape path's exchange (Note [Static-shape path] in harness/moe/static_path.cpp): the
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
  at::Tensor fwd, bwd;  // [W * W] int64: logical rows src -> dst, by the exchange's phase
  // [W] int64: the rows each worker's experts computed (kept rows); on a rank, of its own tokens
  at::Tensor expert_rows;
  int64_t row_bytes = 0;  // bytes per row of the exchanges counted
  bool pending() const { return fwd.defined(); }
  void Add(bool backward, const at::Tensor& rows);  // rows: [W * W] int64 on the device
  void AddExpertRows(const at::Tensor& rows);       // rows: [W] int64 on the device
  // After a flush: every count 0, in place (the tensors stay: a captured step adds into them).
  void Zero();
};

struct StaticExchangeSpec {
  int layer = 0;
  int64_t row_bytes = 0;
  std::vector<int64_t> wire_bytes;  // [W * W] of the dispatch direction
  bool move = true;                 // false: nothing crosses workers (W = 1, gating dropout)
  // [W * W] int64 device: kept rows src -> dst (dispatch). A rank fills its own tokens' rows
  // (its row of the matrix); the exchange back counts them transposed, as their replies.
  at::Tensor rows;
  // A rank: the buffer rows it exchanges with each rank ([W * W], src -> dst, dispatch), and
  // its rank, whose row of the wire bytes it counts (CommMeter::Record's only_source).
  std::vector<int64_t> split_rows;
  int only_source = -1;
  StaticTally* tally = nullptr;
};

// One process: to_experts: x [W, E, C, d] (source-major, as W workers' send buffers) ->
// [E, W, C, d] (each expert's rows from every source); else the way back (a permutation of
// the buffer). A rank: x [rows, d], sent as one all-to-all of spec.split_rows (transposed on
// the way back), or returned as is without spec.move. Counted as one all-to-all (calls 1 when
// spec.move) in phase "fwd", its gradient in phase "bwd", like MeteredExchange.
at::Tensor StaticExchange(Comm& comm, const at::Tensor& x, const StaticExchangeSpec& spec,
                          bool to_experts);

}  // namespace moebench
