// One MoE layer's exchange plan: the rows each routing group sends to each expert, the groups'
// capacities, the rows per worker pair and the bytes they cost on the wire. This is where the
// layer's communication bytes are computed (the meter classes them: Note [Logical and wire
// bytes] in harness/comm/comm_meter.h); harness/moe/exchange.h moves and counts the rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/comm/comm.h"
#include "harness/moe/exchange.h"

namespace moebench {

// The all-to-all's buffer format (run-spec field `exchange`).
enum class ExchangeFormat {
  kPadded,   // a fixed [E_loc, C, d] buffer to every other worker (DeepSpeed, fairseq)
  kCompact,  // exactly the routed rows plus an 8-byte count per worker pair
};

// Throws, naming the field, unless `name` is padded or compact.
ExchangeFormat ParseExchangeFormat(const std::string& name);

// The split sizes: rows per (group, expert) and every group's capacity, as this process knows
// them (one process: every group's; a rank: every rank's after the split-size all-gather, or
// only its own in a step without exchange, the other groups' rows 0).
struct SplitSizes {
  int workers = 1;
  int64_t experts = 0;
  std::vector<int64_t> rows;      // [W * E]: kept assignments of group g to expert j
  std::vector<int64_t> capacity;  // [W]: slots per expert of group g (the router's, or the most
                                  // rows any expert got)
  int64_t Rows(int group, int64_t expert) const { return rows[group * experts + expert]; }
  int64_t GroupRows(int group) const;  // all of a group's rows (its kept assignments)
};

struct ExchangePlan {
  ExchangeSpec forward;  // dispatch: rows[g * W + h] from group (worker) g to worker h
  ExchangeSpec back;     // combine: the transpose
};

// The plan of one layer's exchange. move: rows cross workers (false: one worker, or a
// gating-dropout step: only same-worker bytes, no wire bytes). only_source: see ExchangeSpec.
ExchangePlan MakeExchangePlan(const SplitSizes& sizes, int layer, int64_t row_bytes,
                              ExchangeFormat format, bool move, int only_source);

// Wire bytes per worker pair for `rows` ([W * W]): padded sends E_loc * capacity(src) rows to
// every other worker, compact the rows themselves plus one int64 count; 0 on the diagonal.
std::vector<int64_t> WireBytes(const std::vector<int64_t>& rows,
                               const std::vector<int64_t>& group_capacity,
                               int64_t experts_per_worker, int64_t row_bytes,
                               ExchangeFormat format);

// Bytes one worker sends each other worker in the split-size exchange: E counts and a capacity.
int64_t SplitSizeBytes(int64_t experts);

// Counts the split-size exchange as an all-gather (every worker sends SplitSizeBytes to every
// other worker), in phase "counts". only_source: see ExchangeSpec.
void RecordSplitSizeExchange(Comm& comm, int layer, int64_t experts, double ms, int only_source);

}  // namespace moebench
