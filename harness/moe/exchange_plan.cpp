#include "harness/moe/exchange_plan.h"

#include <stdexcept>

namespace moebench {

ExchangeFormat ParseExchangeFormat(const std::string& name) {
  if (name == "padded") return ExchangeFormat::kPadded;
  if (name == "compact") return ExchangeFormat::kCompact;
  throw std::invalid_argument("exchange: expected padded or compact, got '" + name + "'");
}

int64_t SplitSizes::GroupRows(int group) const {
  int64_t n = 0;
  for (int64_t j = 0; j < experts; ++j) n += Rows(group, j);
  return n;
}

std::vector<int64_t> WireBytes(const std::vector<int64_t>& rows,
                               const std::vector<int64_t>& group_capacity,
                               int64_t experts_per_worker, int64_t row_bytes,
                               ExchangeFormat format) {
  const int w = static_cast<int>(group_capacity.size());
  std::vector<int64_t> wire(rows.size(), 0);
  for (int src = 0; src < w; ++src) {
    for (int dst = 0; dst < w; ++dst) {
      if (src == dst) continue;  // never leaves the worker
      const int64_t n = rows[src * w + dst];
      if (format == ExchangeFormat::kPadded) {
        wire[src * w + dst] = experts_per_worker * group_capacity[src] * row_bytes;
      } else {
        wire[src * w + dst] = n * row_bytes + static_cast<int64_t>(sizeof(int64_t));
      }
    }
  }
  return wire;
}

ExchangePlan MakeExchangePlan(const SplitSizes& sizes, int layer, int64_t row_bytes,
                              ExchangeFormat format, bool move, int only_source) {
  const int w = sizes.workers;
  const int64_t e_loc = sizes.experts / w;
  ExchangePlan plan;
  ExchangeSpec& spec = plan.forward;
  spec.layer = layer;
  spec.only_source = only_source;
  spec.move = move;
  spec.rows.assign(static_cast<size_t>(w) * w, 0);
  for (int g = 0; g < w; ++g) {
    for (int64_t j = 0; j < sizes.experts; ++j) spec.rows[g * w + j / e_loc] += sizes.Rows(g, j);
  }
  spec.wire_bytes = move ? WireBytes(spec.rows, sizes.capacity, e_loc, row_bytes, format)
                         : std::vector<int64_t>(spec.rows.size(), 0);
  plan.back = spec;
  plan.back.rows = TransposeSquare(spec.rows, w);
  plan.back.wire_bytes = TransposeSquare(spec.wire_bytes, w);
  return plan;
}

int64_t SplitSizeBytes(int64_t experts) {
  return (experts + 1) * static_cast<int64_t>(sizeof(int64_t));
}

void RecordSplitSizeExchange(Comm& comm, int layer, int64_t experts, double ms, int only_source) {
  const int w = comm.topology().workers;
  const int64_t bytes = SplitSizeBytes(experts);
  std::vector<int64_t> rows(static_cast<size_t>(w) * w, 1), wire(rows.size(), bytes);
  for (int i = 0; i < w; ++i) {
    rows[i * w + i] = 0;
    wire[i * w + i] = 0;
  }
  comm.meter().Record(layer, "counts", comm.topology(), rows, bytes, wire, 1, ms, only_source);
}

}  // namespace moebench
