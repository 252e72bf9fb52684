// The MoE layer's static-shape path (Note [Static-shape path]): MoeLayerImpl's training forward
// without host reads, on one process and on a rank, and the flush of what it counted on the
// device. The dynamic path and the statistics are in moe_layer.cpp.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "harness/host_read.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/exchange_plan.h"
#include "harness/moe/expert_flops.h"
#include "harness/moe/layer_rows.h"
#include "harness/moe/moe_layer.h"
#include "methods/routing_util.h"

namespace moebench {

namespace {

// The static path needs a capacity to shape its buffers: a group with real tokens that was
// routed without one (dropless routing) is refused. Gate-expert-drop dispatches nothing; a
// group without real tokens may get capacity 0.
void RequireCapacity(int64_t capacity, int64_t real_tokens, bool experts_skipped) {
  if (capacity <= 0 && !experts_skipped && real_tokens != 0) {
    throw std::invalid_argument(
        "moe_path static: needs capacity-bounded routing, but this method routed without a "
        "capacity (dropless routing runs with moe_path dynamic)");
  }
}

}  // namespace

// Note [Static-shape path]: with capacity-bounded routing and the padded exchange, every tensor
// of the layer has a shape known on the host before the step: the W groups' send buffers are
// [W, E, C, d] (C: the largest group capacity), the experts' input [E, W * C, d]. This path
// (run-spec field moe_path = static, training forwards, on one process or a rank) uses them
// and reads nothing from the device:
//   - dispatch: every choice the router listed (a deferred routing lists the dropped ones too)
//     adds its token's row to cell (group, expert, slot) of a zero [W, E, C, d] buffer, a
//     dropped one a zero row to cell (group, expert, 0) (an index_add: the kept cells are
//     distinct, so it is a copy there); empty cells stay zero;
//   - the exchange is a permutation of the buffer (StaticExchange), counted like the dynamic
//     path's all-to-all; no split sizes are exchanged (a padded buffer needs none), so there is
//     no "counts" phase;
//   - the experts are one batched GEMM pair over [E, W * C, d] (padding rows included: they
//     get zero gradient, as the combine never reads them);
//   - combine: each kept choice gathers its cell back, weighted by its router weight (masks,
//     not products with 0: a dropped choice adds nothing even where a value is not finite).
// A gating-dropout step (no exchange: every group on its own worker's experts, with W times
// the slots) uses one lane [1, E, C, d] instead of W, since each expert is fed by one group.
// What the dynamic path counts on the host from the split sizes stays on the device: the kept
// rows per (group, expert) join the pending statistics (tokens per expert, rows, cross-worker
// rows, read at log steps), and the exchanges' logical rows and the experts' rows go to
// a StaticTally that FlushDeviceTally hands to the meter and to the expert FLOPs. The outputs,
// gradients and counted bytes equal the dynamic path's (tests/torch/test_static_path.cpp); the
// expert GEMMs compute E * W * C rows instead of the kept ones, and the FLOPs counted stay the
// kept rows' (Note [MFU]: useful work). Dropless routing (no capacity) keeps the dynamic path.
// On a rank of a process group the buffer is the rank's own [E, C_r, d] (C_r its capacity),
// sent as one all-to-all of E_loc * C_r rows to each rank; what it receives from rank h is
// E_loc * C_h rows, where C_h is the router's CapacityFor of h's share of the batch
// (RouteContext::rank_shares, set by the trainer from the step's whole batch), so the split
// sizes are known without a collective (RankCapacities). The received blocks are padded to the
// largest C for the experts' batched GEMMs and cut back for the reply. A rank counts its own
// tokens' rows both ways (the dispatch it sends, the replies it receives, their gradients):
// summed over ranks, as the trainer sums counters, that is the dynamic path's matrix.
std::vector<int64_t> MoeLayerImpl::RankCapacities(const RouteContext& ctx,
                                                  const RoutedGroups& routed, int rank,
                                                  int64_t t) const {
  const Topology& topo = comm_->topology();
  const int w = topo.workers;
  if (!ctx.rank_shares || static_cast<int>(ctx.rank_shares->size()) != w) {
    throw std::invalid_argument(
        "moe_path static on ranks: the forward's context lacks every rank's share of the batch "
        "(RouteContext::rank_shares, which the trainer sets) to size the exchange buffers");
  }
  std::vector<int64_t> capacity(w, 0);
  for (int h = 0; h < w; ++h) {
    const RankShare& share = (*ctx.rank_shares)[static_cast<size_t>(h)];
    const std::vector<int64_t>& lengths = opt_.decoder ? share.tgt_lengths : share.src_lengths;
    const int64_t len = opt_.decoder ? share.tgt_len : share.src_len;
    const int64_t tokens = static_cast<int64_t>(lengths.size()) * len;
    RouteContext c = ctx;  // rank h's view: its tokens' layout, none of this rank's data
    c.group = h;
    c.topology = topo;
    c.decoder = opt_.decoder;
    c.layer = opt_.index;
    c.total_tokens = tokens;
    c.tokens_per_sentence = len;
    c.src_lengths = c.tgt_lengths = nullptr;
    (opt_.decoder ? c.tgt_lengths : c.src_lengths) =
        std::make_shared<const std::vector<int64_t>>(lengths);
    c.token_ids = at::Tensor();
    c.real_tokens = RealTokensIn(lengths, len, 0, tokens);
    capacity[h] = router_->BufferCapacity(tokens, c.real_tokens, c);
    // Every rank refuses alike (none waits in an exchange that another left).
    RequireCapacity(capacity[h], c.real_tokens, routed.skip_experts);
    // Cannot happen with the trainer's shares; if it did, this rank's peers would wait in the
    // exchange until the group's timeout.
    if (h == rank && (tokens != t || capacity[h] != routed.routings[0].capacity)) {
      throw std::logic_error("moe_path static on ranks: rank " + std::to_string(rank) +
                             "'s share (" + std::to_string(tokens) + " tokens, capacity " +
                             std::to_string(capacity[h]) + ") does not describe its input (" +
                             std::to_string(t) + " tokens, capacity " +
                             std::to_string(routed.routings[0].capacity) + ")");
    }
  }
  return capacity;
}

at::Tensor MoeLayerImpl::StaticForward(const at::Tensor& xc, const RoutedGroups& routed,
                                       const RouteContext& ctx, int rank, MoeLayerStats& stats,
                                       PendingStats& pending) {
  Comm& comm = *comm_;
  const Topology& topo = comm.topology();
  const int w = topo.workers;
  const bool on_rank = rank >= 0;
  const int64_t e = opt_.num_experts;
  const int64_t e_loc = e / w;
  const int64_t d = opt_.d_model;
  const int64_t t = xc.size(0);
  const int g0 = on_rank ? rank : 0;  // the first group this process routed
  const int64_t n_groups = static_cast<int64_t>(routed.routings.size());
  // A rank sizes the other ranks' buffers from their shares of the batch (no collective); it
  // checks every rank's capacity there, alike on every rank.
  const bool exchange = on_rank && !routed.skip_exchange && !routed.skip_experts;
  std::vector<int64_t> capacity(w, 0);
  std::vector<at::Tensor> tok, exp, slot, wt, kept, src;
  for (size_t i = 0; i < routed.routings.size(); ++i) {
    const Routing& r = routed.routings[i];
    const int g = routed.groups[i];
    if (!exchange) RequireCapacity(r.capacity, routed.real_tokens[i], routed.skip_experts);
    capacity[g] = r.capacity;
    tok.push_back(r.token);
    exp.push_back(r.expert);
    slot.push_back(r.slot);
    wt.push_back(r.weight);
    kept.push_back(r.deferred.defined()
                       ? DeferredKeptMask(r)
                       : at::ones(r.token.sizes(), r.token.options().dtype(at::kBool)));
    src.push_back(at::full({r.token.size(0)}, g, r.token.options()));
  }
  if (exchange) capacity = RankCapacities(ctx, routed, rank, t);
  const LayerRows rows{Join(tok), Join(exp), Join(wt), Join(src)};
  const at::Tensor keep = Join(kept);
  const at::Tensor slots = Join(slot);
  const at::Tensor cell = (rows.source - g0) * e + rows.expert;  // (group, expert)
  const at::Tensor counts =
      at::zeros({n_groups * e}, cell.options()).index_add_(0, cell, keep.to(at::kLong));
  pending.group_expert = counts;
  pending.first_group = g0;
  stats.node_counts = topo.num_nodes() > 1 && routed.statistics;
  if (stats.node_counts) {
    std::tie(pending.other_node_copies, pending.nodes_per_token_max) =
        CountNodeCopies(rows, topo, e, t, rank, keep);
  }
  assignments_ = LayerAssignments();  // the dynamic path's only
  if (routed.skip_experts) {
    Publish(stats, std::move(pending));
    return at::zeros({t, d}, xc.options());
  }
  Publish(stats, std::move(pending));

  // Kept rows per worker pair (src -> dst) and per computing worker, on the device. A rank
  // counts its own tokens' rows, both ways (Note [Static-shape path]).
  const at::Tensor pair_rows = counts.view({n_groups, w, e_loc}).sum(2);
  tally_.AddExpertRows(pair_rows.sum(0));
  StaticExchangeSpec spec;
  spec.layer = opt_.index;
  spec.row_bytes = d * static_cast<int64_t>(xc.element_size());
  spec.move = !routed.skip_exchange && (on_rank || w > 1);
  spec.wire_bytes = spec.move ? WireBytes(std::vector<int64_t>(static_cast<size_t>(w) * w, 0),
                                          capacity, e_loc, spec.row_bytes, ExchangeFormat::kPadded)
                              : std::vector<int64_t>(static_cast<size_t>(w) * w, 0);
  spec.rows = (on_rank ? at::constant_pad_nd(pair_rows, {0, 0, rank, w - 1 - rank}) : pair_rows)
                  .reshape({-1});
  spec.only_source = rank;
  spec.tally = &tally_;

  // Dispatch into the padded buffer, exchange, experts. A kept choice's row goes to its cell,
  // a dropped one adds a zero row to its expert's first cell (so no extra slot to cut off: the
  // cut's backward would zero-fill and copy the whole buffer). Masks, not products: a dropped
  // choice contributes nothing even where its values are not finite. Buffer cells per expert:
  // one process, the largest group capacity; a rank, its own (at least 1 each).
  std::vector<int64_t> cells(w);
  for (int h = 0; h < w; ++h) cells[h] = std::max<int64_t>(1, capacity[h]);
  const int64_t c_max = *std::max_element(cells.begin(), cells.end());
  const int64_t c = on_rank ? cells[rank] : c_max;
  // A gating-dropout step keeps every group on its own worker's experts (with W times the
  // slots): one buffer lane serves all groups, as each expert is fed by one group only; a
  // rank's buffer holds its own experts' cells only.
  const int64_t lanes = routed.skip_exchange ? 1 : w;
  const bool local_only = on_rank && routed.skip_exchange;
  const at::Tensor lane_cell =
      local_only ? rows.expert - first_expert_ : (routed.skip_exchange ? rows.expert : cell);
  const at::Tensor at_cell = lane_cell * c + at::where(keep, slots, 0);
  const at::Tensor keep_rows = keep.unsqueeze(1);
  const at::Tensor kept_rows = at::where(keep_rows, GatherRows(xc, rows.token), 0);
  const int64_t buf_rows = (on_rank ? (local_only ? e_loc : e) : lanes * e) * c;
  const at::Tensor buf = at::zeros({buf_rows, d}, xc.options()).index_add(0, at_cell, kept_rows);
  at::Tensor back;
  if (!on_rank) {
    const at::Tensor expert_in =
        StaticExchange(comm, buf.view({lanes, e, c, d}), spec, /*to_experts=*/true);
    const at::Tensor expert_out = experts_->ForwardBatched(expert_in.view({e, lanes * c, d}));
    back = StaticExchange(comm, expert_out.view({e, lanes, c, d}), spec, false);
  } else if (local_only) {
    const at::Tensor in = StaticExchange(comm, buf, spec, true);  // nothing moves; counted
    back = StaticExchange(comm, experts_->ForwardBatched(in.view({e_loc, c, d})).view({-1, d}),
                          spec, false);
  } else {
    // Rank h's rows arrive as [E_loc, C_h, d] blocks; the experts take [E_loc, W, C_max, d].
    spec.split_rows.resize(static_cast<size_t>(w) * w);
    for (int g = 0; g < w; ++g) {
      for (int h = 0; h < w; ++h) spec.split_rows[g * w + h] = e_loc * cells[g];
    }
    const at::Tensor recv = StaticExchange(comm, buf, spec, true);
    const bool uniform = std::all_of(cells.begin(), cells.end(), [&](int64_t n) { return n == c; });
    at::Tensor expert_in;
    if (uniform) {
      expert_in = recv.view({w, e_loc, c, d}).transpose(0, 1).contiguous();
    } else {
      std::vector<at::Tensor> blocks;
      int64_t at_row = 0;
      for (int h = 0; h < w; ++h) {
        const at::Tensor b = recv.narrow(0, at_row, e_loc * cells[h]).view({e_loc, cells[h], d});
        blocks.push_back(at::constant_pad_nd(b, {0, 0, 0, c_max - cells[h]}));
        at_row += e_loc * cells[h];
      }
      expert_in = at::stack(blocks, 1);
    }
    const int64_t cw = uniform ? c : c_max;
    const at::Tensor out =
        experts_->ForwardBatched(expert_in.view({e_loc, w * cw, d})).view({e_loc, w, cw, d});
    at::Tensor send_back;
    if (uniform) {
      send_back = out.transpose(0, 1).contiguous().view({-1, d});
    } else {
      std::vector<at::Tensor> blocks;
      for (int h = 0; h < w; ++h) {
        blocks.push_back(out.select(1, h).narrow(1, 0, cells[h]).reshape({-1, d}));
      }
      send_back = at::cat(blocks, 0);
    }
    back = StaticExchange(comm, send_back, spec, false);
  }

  // Combine: each kept choice's cell, weighted.
  const at::Tensor out = at::where(keep_rows, GatherRows(back.reshape({-1, d}), at_cell), 0);
  return CombineRows(out, rows.token, at::where(keep, rows.weight, 0), t);
}

void MoeLayerImpl::FlushDeviceTally() {
  if (!tally_.pending() && !tally_.expert_rows.defined()) return;
  // Zeroed in place below, not dropped: a CUDA graph captured after the first step adds into
  // these tensors at every replay (Note [Training step graphs]).
  const int w = comm_->topology().workers;
  const size_t ww = static_cast<size_t>(w) * w;
  // Either part may be missing (a flush between a forward and its backward leaves the next
  // flush the backward's rows alone): zeros in its place.
  const at::Tensor& any = tally_.expert_rows.defined() ? tally_.expert_rows : tally_.fwd;
  auto part = [&](const at::Tensor& v, int64_t n) {
    return v.defined() ? v : at::zeros({n}, any.options());
  };
  const at::Tensor host =
      HostRead(at::cat({part(tally_.expert_rows, w), part(tally_.fwd, static_cast<int64_t>(ww)),
                        part(tally_.bwd, static_cast<int64_t>(ww))}));
  const int64_t* h = host.data_ptr<int64_t>();  // one copy
  const std::vector<int64_t> per_worker(h, h + w);
  AddWorkerExpertFlops(per_worker);
  for (int64_t n : per_worker) expert_flops_ += ExpertForwardFlops(n, opt_.d_model, opt_.d_hidden);
  if (tally_.pending()) {
    const std::vector<int64_t> none(ww, 0);
    const std::vector<int64_t> fwd(h + w, h + w + ww), bwd(h + w + ww, h + w + 2 * ww);
    // Rows were counted (else nothing, as in the dynamic path: no "bwd" entry without a
    // backward; the exchange itself recorded its calls and wire bytes when it ran).
    auto nonzero = [](const std::vector<int64_t>& v) {
      return std::any_of(v.begin(), v.end(), [](int64_t n) { return n != 0; });
    };
    if (nonzero(fwd)) {
      comm_->meter().Record(opt_.index, "fwd", comm_->topology(), fwd, tally_.row_bytes, none, 0,
                            0);
    }
    if (nonzero(bwd)) {
      comm_->meter().Record(opt_.index, "bwd", comm_->topology(), bwd, tally_.row_bytes, none, 0,
                            0);
    }
  }
  tally_.Zero();
}

}  // namespace moebench
