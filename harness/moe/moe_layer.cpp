#include "harness/moe/moe_layer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "harness/autocast.h"
#include "harness/host_read.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/exchange.h"
#include "harness/moe/expert_flops.h"
#include "harness/moe/layer_rows.h"
#include "harness/torch_compat.h"
#include "harness/util/time.h"
#include "methods/routing_util.h"

namespace moebench {

MoeLayerImpl::MoeLayerImpl(MoeLayerOptions opt, std::shared_ptr<Router> router, Comm* comm)
    : opt_(std::move(opt)), comm_(comm) {
  if (!comm_) throw std::invalid_argument("MoeLayer: comm must not be null");
  format_ = ParseExchangeFormat(opt_.exchange);
  comm_->topology().Validate(static_cast<int>(opt_.num_experts));
  router_ = register_module("router", std::move(router));
  experts_ = register_module(
      "experts", std::make_shared<Experts>(opt_.num_experts, opt_.d_model, opt_.d_hidden));
  if (opt_.shared_hidden > 0) {
    shared_ =
        register_module("shared", std::make_shared<Experts>(1, opt_.d_model, opt_.shared_hidden));
  }
  aux_ = at::zeros({}, at::kFloat);
}

// at::cat without its copy when there is one part (one worker).
at::Tensor Join(const std::vector<at::Tensor>& parts) {
  return parts.size() == 1 ? parts[0] : at::cat(parts);
}

// Real tokens among the flattened positions [b0, b1) of right-padded sentences of
// `per_sentence` positions with these real lengths.
int64_t RealTokensIn(const std::vector<int64_t>& lengths, int64_t per_sentence, int64_t b0,
                     int64_t b1) {
  int64_t n = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t s0 = static_cast<int64_t>(i) * per_sentence;
    const int64_t s1 = s0 + std::min(lengths[i], per_sentence);
    n += std::max<int64_t>(0, std::min(s1, b1) - std::max(s0, b0));
  }
  return n;
}

// a + b, where an undefined a is 0.
at::Tensor AddTo(const at::Tensor& a, const at::Tensor& b) { return a.defined() ? a + b : b; }

// Note [Node copies]: the byte meter counts one row per (token, expert) pair, which is what an
// all-to-all between workers moves. Node-limited routing (DeepSeek-V3) bounds something else:
// the nodes a token reaches, since a node-aware dispatch sends a token once to each node its
// experts are on and forwards it inside the node. So the layer also counts, from the kept rows,
// the distinct (token, node) pairs with the node not the token's own (other-node copies:
// other-node bytes of such a dispatch = copies x d_model x element size per exchange), and the
// most distinct nodes (own included) any token reaches. On the device, from a [T, nodes] mask;
// read with the other pending statistics. Only with more than one node.
// Returns (copies, most nodes) as fp64 device scalars; undefined (0) without rows. kept: which
// rows count (the static path lists dropped choices too); undefined: all.
std::pair<at::Tensor, at::Tensor> CountNodeCopies(const LayerRows& rows, const Topology& topo,
                                                  int64_t e, int64_t t, int rank,
                                                  const at::Tensor& kept) {
  const int64_t nodes = topo.num_nodes();
  if (nodes <= 1 || t == 0 || rows.token.size(0) == 0) return {};
  at::NoGradGuard no_grad;
  const int64_t e_loc = e / topo.workers;
  const at::Tensor dest_node = at::div(rows.expert, e_loc * topo.workers_per_node, "floor");
  const at::Tensor source =
      rows.source.defined() ? rows.source : at::full_like(rows.token, rank >= 0 ? rank : 0);
  const at::Tensor other = (dest_node != at::div(source, topo.workers_per_node, "floor"));
  const at::Tensor key = rows.token * nodes + dest_node;
  const at::TensorOptions opt = rows.token.options();
  if (kept.defined()) {  // rows counted per pair, then "any"
    const at::Tensor reached =
        at::zeros({t * nodes}, opt).index_add_(0, key, kept.to(at::kLong)).gt(0);
    const at::Tensor off =
        at::zeros({t * nodes}, opt).index_add_(0, key, other.logical_and(kept).to(at::kLong));
    return {off.gt(0).sum().to(at::kDouble), reached.view({t, nodes}).sum(1).max().to(at::kDouble)};
  }
  // Every row of a (token, node) pair writes the same values: the token fixes its own node.
  const at::Tensor reached = at::zeros({t * nodes}, opt).index_fill_(0, key, 1);
  const at::Tensor off = at::zeros({t * nodes}, opt).index_put_({key}, other.to(at::kLong));
  return {off.sum().to(at::kDouble), reached.view({t, nodes}).sum(1).max().to(at::kDouble)};
}

namespace {

// The host-side sentence lengths of this layer's input, when the context has them and they
// describe it (B sentences of tokens_per_sentence positions = t tokens).
const std::vector<int64_t>* HostLengths(const RouteContext& ctx, bool decoder, int64_t t) {
  const auto& l = decoder ? ctx.tgt_lengths : ctx.src_lengths;
  if (!l || ctx.tokens_per_sentence <= 0 ||
      static_cast<int64_t>(l->size()) * ctx.tokens_per_sentence != t) {
    return nullptr;
  }
  return l.get();
}

// A routing group's real tokens and its router-entropy numerator (summed over real tokens;
// undefined without router probabilities or without `entropy`), as fp64 device scalars: no
// host read. real_tokens: the count known on the host, or -1 to count `pad` (all of x's rows
// are real without one).
std::pair<at::Tensor, at::Tensor> GroupStatistics(const Routing& r, const at::Tensor& pad,
                                                  int64_t real_tokens, const at::Tensor& x,
                                                  bool entropy) {
  at::NoGradGuard no_grad;  // statistics: no graph for the entropy's ops
  const at::Tensor n =
      pad.defined() && real_tokens < 0
          ? pad.sum().to(at::kDouble)
          : at::full({}, static_cast<double>(real_tokens >= 0 ? real_tokens : x.size(0)),
                     x.options().dtype(at::kDouble));
  at::Tensor entropy_sum;
  if (entropy && r.probs.defined()) {
    at::Tensor ent = -(r.probs * at::log(r.probs.clamp_min(1e-9))).sum(-1);
    if (pad.defined()) ent = ent * pad.to(at::kFloat);
    entropy_sum = ent.sum().to(at::kDouble);
  }
  return {n, entropy_sum};
}

// The split sizes on one process: every group's rows per expert in the one copy to the host
// (Note [Host synchronisation]); dynamic capacities (a router that sets none: the most rows any
// expert got in the group) from them.
SplitSizes ReadSplitSizes(const std::vector<Routing>& routed, int64_t e, const at::Tensor& like) {
  const int w = static_cast<int>(routed.size());
  std::vector<at::Tensor> keys, kept_masks;
  for (int g = 0; g < w; ++g) {
    const Routing& r = routed[g];
    keys.push_back(g * e + r.expert);
    kept_masks.push_back(r.deferred.defined() ? DeferredKeptMask(r).to(at::kLong)
                                              : at::ones_like(r.expert));
  }
  const at::Tensor group_expert_dev = at::zeros({w * e}, like.options().dtype(at::kLong))
                                          .index_add_(0, Join(keys), Join(kept_masks));
  const at::Tensor host = HostRead(group_expert_dev);  // the one copy
  const int64_t* ge = host.data_ptr<int64_t>();
  SplitSizes sizes;
  sizes.workers = w;
  sizes.experts = e;
  sizes.rows.assign(ge, ge + w * e);
  sizes.capacity.assign(w, 0);
  for (int g = 0; g < w; ++g) {
    int64_t most = 0;
    for (int64_t j = 0; j < e; ++j) most = std::max(most, sizes.Rows(g, j));
    sizes.capacity[g] = routed[g].capacity > 0 ? routed[g].capacity : most;
  }
  return sizes;
}

// The split sizes on a rank: its rows per expert and its capacity (the router's, or the most
// rows any expert got), on the device, reach the host once (Note [Host synchronisation]): with
// every other rank's in the split-size all-gather, or alone in a step without exchange (the
// other ranks' rows are then 0 here).
SplitSizes ShareSplitSizes(const Routing& r, Comm& comm, int layer, int64_t e, bool gather) {
  const int w = comm.topology().workers;
  const int rank = comm.rank();
  const at::Tensor counts_dev =
      r.deferred.defined() ? at::zeros({e}, r.expert.options())
                                 .index_add_(0, r.expert, DeferredKeptMask(r).to(at::kLong))
                           : CountsOf(r.expert, e);
  const at::Tensor cap_dev =
      r.capacity > 0 ? at::full({1}, r.capacity, counts_dev.options()) : counts_dev.max().view({1});
  const at::Tensor mine = at::cat({counts_dev, cap_dev});  // [E + 1]
  SplitSizes sizes;
  sizes.workers = w;
  sizes.experts = e;
  sizes.rows.assign(static_cast<size_t>(w) * e, 0);
  sizes.capacity.assign(w, 0);
  auto take = [&](const int64_t* c, int group) {
    std::copy(c, c + e, sizes.rows.begin() + group * e);
    sizes.capacity[group] = c[e];
  };
  if (!gather) {
    const at::Tensor host = HostRead(mine);
    take(host.data_ptr<int64_t>(), rank);
    return sizes;
  }
  const double g0 = SteadyNowMs();
  const at::Tensor all = HostRead(comm.AllGather(mine));  // [W, E + 1]
  RecordSplitSizeExchange(comm, layer, e, SteadyNowMs() - g0, rank);
  for (int s = 0; s < w; ++s) take(all.data_ptr<int64_t>() + s * (e + 1), s);
  return sizes;
}

// Cuts deferred lists to their kept part (a group's rows sum to its kept count) and joins the
// groups' assignments. `assignments` gets them for the einsum oracle, with slots made unique
// per expert across groups (slot + group * capacity).
LayerRows JoinKept(std::vector<Routing>& routed, const std::vector<int>& groups,
                   const SplitSizes& sizes, LayerAssignments& assignments) {
  std::vector<at::Tensor> tok, exp, slot, wt, src;
  int64_t max_capacity = 0;
  for (size_t i = 0; i < routed.size(); ++i) {
    Routing& r = routed[i];
    if (r.deferred.defined()) KeepFirstChoices(r, sizes.GroupRows(groups[i]));
    tok.push_back(r.token);
    exp.push_back(r.expert);
    slot.push_back(r.slot);
    wt.push_back(r.weight);
    if (routed.size() > 1) src.push_back(at::full({r.token.size(0)}, groups[i], r.token.options()));
    max_capacity = std::max(max_capacity, sizes.capacity[groups[i]]);
  }
  LayerRows rows{Join(tok), Join(exp), Join(wt), at::Tensor()};
  if (routed.size() == 1) {
    assignments = {rows.token, rows.expert, slot[0], rows.weight,
                   std::max<int64_t>(max_capacity, 1)};
    return rows;
  }
  rows.source = Join(src);
  const int64_t w = static_cast<int64_t>(routed.size());
  assignments = {rows.token, rows.expert, Join(slot) + rows.source * max_capacity, rows.weight,
                 std::max<int64_t>(max_capacity * w, 1)};
  return rows;
}

// A step without exchange (gating dropout) must keep every row on its group's worker.
void CheckRowsStayLocal(const ExchangePlan& plan, const std::vector<int>& groups, int w) {
  for (int g : groups) {
    for (int h = 0; h < w; ++h) {
      if (h != g && plan.forward.rows[g * w + h] != 0) {
        throw std::logic_error("MoeLayer: a step without exchange routed tokens to another worker");
      }
    }
  }
}

// Nothing crosses workers: the rows the experts see are the send buffer itself, and grouping
// it by (source, expert) and then stably by expert is one stable sort by expert (assignments
// are concatenated by source). One gather, the experts, one combine. expert_rows: the rows of
// each expert `ex` holds.
at::Tensor ComputeInPlace(Comm& comm, const Experts& ex, const at::Tensor& xc,
                          const LayerRows& rows, const std::vector<int64_t>& expert_rows,
                          const ExchangePlan& plan, int64_t t) {
  const at::Tensor order = compat::StableArgsort(rows.expert);
  const at::Tensor tok_sorted = rows.token.index_select(0, order);
  const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, tok_sorted), plan.forward);
  const at::Tensor out = MeteredExchange(comm, ex.ForwardGrouped(recv, expert_rows), plan.back);
  return CombineRows(out, tok_sorted, rows.weight.index_select(0, order), t);
}

// How rows travel on one process playing W workers: one send buffer grouped by (source worker,
// expert), which is (source, destination) blocks; LocalComm delivers them in (destination,
// source, expert) order.
at::Tensor ExchangeAsOneProcess(Comm& comm, const Experts& ex, const at::Tensor& xc,
                                const LayerRows& rows, const std::vector<int64_t>& expert_rows,
                                const ExchangePlan& plan, int64_t e, int64_t t) {
  const int64_t w = comm.topology().workers;
  const int64_t e_loc = e / w;
  const at::Tensor send_order = compat::StableArgsort(rows.source * e + rows.expert);
  const at::Tensor send_token = rows.token.index_select(0, send_order);
  const at::Tensor send_expert = rows.expert.index_select(0, send_order);
  const at::Tensor send_source = rows.source.index_select(0, send_order);
  const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, send_token), plan.forward);

  // Local experts. Received rows come in (destination, source, expert) order; regroup by
  // expert (each destination's experts are contiguous), run, and restore the received order.
  const at::Tensor by_expert = compat::StableArgsort(send_expert);  // send idx per expert pos
  const at::Tensor recv_key =
      (at::div(send_expert, e_loc, "floor") * w + send_source) * e + send_expert;
  const at::Tensor recv_order = compat::StableArgsort(recv_key);  // send idx per recv pos
  const at::Tensor send_to_recv =
      at::empty_like(recv_order)
          .index_copy_(0, recv_order, at::arange(recv_order.size(0), recv_order.options()));
  // Received position of each row, in expert order.
  const at::Tensor gather = send_to_recv.index_select(0, by_expert);
  const at::Tensor expert_out = ex.ForwardGrouped(recv.index_select(0, gather), expert_rows);
  const at::Tensor back = at::empty_like(expert_out).index_copy(0, gather, expert_out);
  const at::Tensor out = MeteredExchange(comm, back, plan.back);  // in send order again

  // Combine: weighted scatter-add back into token positions.
  return CombineRows(out, send_token, rows.weight.index_select(0, send_order), t);
}

// How rows travel on a rank of a process group (Note [Expert parallelism]): this rank's rows
// grouped by expert (hence by destination rank) in one variable-size all-to-all; the received
// rows come by source rank, each source's by expert, and are regrouped by local expert.
at::Tensor ExchangeAsRank(Comm& comm, const Experts& ex, const at::Tensor& xc,
                          const LayerRows& rows, const SplitSizes& sizes, const ExchangePlan& plan,
                          int64_t first, int64_t t) {
  const int w = comm.topology().workers;
  const int rank = comm.rank();
  const int64_t e_loc = ex.num_experts();
  const at::Tensor send_order = compat::StableArgsort(rows.expert);
  const at::Tensor send_token = rows.token.index_select(0, send_order);
  const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, send_token), plan.forward);

  std::vector<int64_t> gather_idx;
  gather_idx.reserve(static_cast<size_t>(recv.size(0)));
  std::vector<int64_t> expert_rows(e_loc, 0);
  std::vector<int64_t> source_offset(w + 1, 0);
  for (int s = 0; s < w; ++s) {
    source_offset[s + 1] = source_offset[s] + plan.forward.rows[s * w + rank];
  }
  std::vector<int64_t> cursor(source_offset.begin(), source_offset.end() - 1);
  for (int64_t j = 0; j < e_loc; ++j) {
    for (int s = 0; s < w; ++s) {
      const int64_t n = sizes.Rows(s, first + j);
      for (int64_t i = 0; i < n; ++i) gather_idx.push_back(cursor[s] + i);
      cursor[s] += n;
      expert_rows[j] += n;
    }
  }
  const at::Tensor gather =
      OnDeviceOf(at::tensor(gather_idx, at::TensorOptions().dtype(at::kLong)), recv);
  const at::Tensor expert_out = ex.ForwardGrouped(recv.index_select(0, gather), expert_rows);
  const at::Tensor back = at::empty_like(expert_out).index_copy(0, gather, expert_out);
  const at::Tensor out = MeteredExchange(comm, back, plan.back);  // in send order again

  // Combine into this rank's token positions.
  return CombineRows(out, send_token, rows.weight.index_select(0, send_order), t);
}

}  // namespace

// Note [Host synchronisation]: on a GPU every value read on the host (`item`, a copy to the
// CPU, bincount's min/max) waits for the work queued before it. The layer reads the host once
// per forward: the rows per (group, expert) -- the split sizes, which shape the expert GEMMs
// and the all-to-all -- with dynamic capacities derived from them (on ranks: in the split-size
// all-gather). The top-k routers leave their kept/dropped counts on the device when the layer
// asks (RouteContext::defer_counts): they return every choice, the kept ones first, and the
// layer cuts the lists once it has read the split sizes (a group's rows sum to its kept
// count; on one process the counts ride along in the same copy, on ranks they join the
// pending statistics). The capacity needs no read when the context carries the batch's
// sentence lengths (the trainer's does): each group's real tokens are counted on the host.

// The forward FLOPs of the rows each worker's experts computed (Note [Compute model]).
void MoeLayerImpl::AddWorkerExpertFlops(const std::vector<int64_t>& rows_per_worker) {
  if (expert_flops_by_worker_.size() != rows_per_worker.size()) {
    expert_flops_by_worker_.assign(rows_per_worker.size(), 0.0);
  }
  for (size_t i = 0; i < rows_per_worker.size(); ++i) {
    expert_flops_by_worker_[i] +=
        ExpertForwardFlops(rows_per_worker[i], opt_.d_model, opt_.d_hidden);
  }
}

// Routing statistics (real tokens, router entropy, aux-loss values, deferred counts on ranks)
// stay device scalars until someone reads last_stats(), which copies them in one go: the
// trainer does so at log steps only. Deliberate reads go through HostRead, which counts them
// (tests/torch/test_host_sync.cpp pins the count); docs/gpu.md lists what remains.
void MoeLayerImpl::Publish(const MoeLayerStats& stats, PendingStats pending) {
  stats_ = stats;
  pending_ = std::move(pending);
  pending_.waiting = true;
}

void MoeLayerImpl::Materialize() const {
  if (!pending_.waiting) return;
  pending_.waiting = false;
  const at::TensorOptions opt = pending_.real_tokens.options().dtype(at::kDouble);
  std::vector<at::Tensor> parts;
  auto add = [&](const at::Tensor& v) {
    parts.push_back(v.defined() ? v.detach().to(opt).reshape({1}) : at::zeros({1}, opt));
  };
  add(pending_.real_tokens);
  add(pending_.entropy_sum);
  add(pending_.choices);
  add(pending_.dropped);
  add(pending_.other_node_copies);
  add(pending_.nodes_per_token_max);
  for (const auto& [name, v] : pending_.losses) add(v);
  if (pending_.group_expert.defined()) parts.push_back(pending_.group_expert.to(opt));
  const at::Tensor host = HostRead(at::cat(parts));  // one copy
  const double* h = host.data_ptr<double>();
  stats_.real_tokens = static_cast<int64_t>(std::llround(h[0]));
  stats_.entropy_sum = h[1];
  stats_.entropy =
      stats_.real_tokens > 0 ? stats_.entropy_sum / static_cast<double>(stats_.real_tokens) : 0;
  stats_.choices += static_cast<int64_t>(std::llround(h[2]));
  stats_.dropped += static_cast<int64_t>(std::llround(h[3]));
  stats_.other_node_copies = static_cast<int64_t>(std::llround(h[4]));
  stats_.nodes_per_token_max = static_cast<int64_t>(std::llround(h[5]));
  stats_.losses.clear();
  size_t i = 6;
  for (const auto& [name, v] : pending_.losses) stats_.losses[name] = h[i++];
  if (pending_.group_expert.defined()) {  // the static path's kept rows per (group, expert)
    const int64_t e = opt_.num_experts;
    const int64_t groups = pending_.group_expert.numel() / e;
    const int64_t e_loc = e / comm_->topology().workers;
    stats_.tokens_per_expert.assign(e, 0);
    for (int64_t i_g = 0; i_g < groups; ++i_g) {
      const int64_t g = pending_.first_group + i_g;
      for (int64_t j = 0; j < e; ++j) {
        const int64_t n = std::llround(h[i + i_g * e + j]);
        stats_.tokens_per_expert[j] += n;
        if (stats_.experts_skipped) continue;
        stats_.rows += n;
        if (j / e_loc != g) stats_.rows_cross_worker += n;
      }
    }
  }
  pending_ = PendingStats();
}

void MoeLayerImpl::KeepExperts(int64_t first, int64_t count) {
  if (first < 0 || count < 1 || first + count > experts_->num_experts()) {
    throw std::invalid_argument("MoeLayer::KeepExperts: experts [" + std::to_string(first) + ", " +
                                std::to_string(first + count) + ") outside [0, " +
                                std::to_string(experts_->num_experts()) + ")");
  }
  at::NoGradGuard no_grad;
  auto shard = std::make_shared<Experts>(
      experts_->w1.narrow(0, first, count).clone(), experts_->b1.narrow(0, first, count).clone(),
      experts_->w2.narrow(0, first, count).clone(), experts_->b2.narrow(0, first, count).clone());
  experts_ = replace_module("experts", shard);
  first_expert_ = first;
}

void MoeLayerImpl::SetEvalReplica(std::shared_ptr<Experts> all, Comm* local) {
  if ((all == nullptr) != (local == nullptr)) {
    throw std::invalid_argument("MoeLayer::SetEvalReplica: set both or neither");
  }
  if (all && all->num_experts() != opt_.num_experts) {
    throw std::invalid_argument("MoeLayer::SetEvalReplica: the replica must hold all experts");
  }
  replica_ = std::move(all);
  replica_comm_ = local;
}

// Note [Expert parallelism]: with a process group, rank r holds experts
// [r*E/W, (r+1)*E/W) and its own sentences of the batch, which are exactly the tokens of virtual
// worker r (Note [Token blocks]). It routes them as group r, exchanges its expert counts and
// capacity with every rank (one all-gather: the split sizes), sends its rows with one
// variable-size all-to-all, regroups the received rows by local expert, runs its experts, and
// sends the results back the same way. Every rank counts only the rows it sends itself; the
// trainer sums the byte counters and the routing statistics over ranks at each log step. The
// static-shape path on a rank (Note [Static-shape path]) needs no all-gather (the split sizes
// follow from every rank's share of the batch) and counts its own tokens' rows both ways
// instead: the sums over ranks are the same.
void MoeLayerImpl::CheckRankExperts(int rank, int workers) const {
  const int64_t e_loc = opt_.num_experts / workers;
  const int64_t first = static_cast<int64_t>(rank) * e_loc;
  if (experts_->num_experts() != e_loc || first_expert_ != first) {
    throw std::logic_error("MoeLayer: rank " + std::to_string(rank) + " must hold experts [" +
                           std::to_string(first) + ", " + std::to_string(first + e_loc) +
                           ") (KeepExperts)");
  }
}

MoeLayerImpl::RoutedGroups MoeLayerImpl::RouteGroups(const at::Tensor& x, const at::Tensor& pad,
                                                     const RouteContext& ctx_in,
                                                     const Topology& topo, int rank,
                                                     MoeLayerStats& stats, PendingStats& pending) {
  const int w = topo.workers;
  const int64_t t = x.size(0);
  const int64_t per_sentence = ctx_in.tokens_per_sentence;
  const std::vector<int64_t>* lengths = HostLengths(ctx_in, opt_.decoder, t);
  RoutedGroups routed;
  std::map<std::string, std::pair<at::Tensor, double>> losses;  // summed over groups, coef
  const int g_first = rank >= 0 ? rank : 0;
  const int g_end = rank >= 0 ? rank + 1 : w;
  for (int g = g_first; g < g_end; ++g) {
    // One process: worker g's block of tokens (Note [Token blocks]); a rank: all of its own.
    const int64_t b0 = rank >= 0 ? 0 : GroupBegin(t, per_sentence, w, g);
    const int64_t b1 = rank >= 0 ? t : GroupBegin(t, per_sentence, w, g + 1);
    const bool whole = b0 == 0 && b1 == t;
    RouteContext ctx = ctx_in;
    ctx.group = g;
    ctx.topology = topo;
    ctx.decoder = opt_.decoder;
    ctx.layer = opt_.index;
    // Bounded capacity (Note [Bounded capacity]): real tokens counted on the device, so that no
    // host value follows the batch's lengths.
    ctx.real_tokens =
        lengths && !ctx.bounded_capacity ? RealTokensIn(*lengths, per_sentence, b0, b1) : -1;
    ctx.defer_counts = true;
    const at::Tensor pad_g = pad.defined() && !whole ? pad.narrow(0, b0, b1 - b0) : pad;
    // The whole input when there is one group: a narrow's backward would allocate and fill a
    // zero gradient of x's size and copy into it.
    const at::Tensor x_g = whole ? x : x.narrow(0, b0, b1 - b0);
    Routing r;
    {
      NoAutocast fp32_router(x.device().type());  // Note [Device and precision]
      r = router_->Route(x_g, pad_g, ctx);
    }
    if (b0 != 0) r.token = r.token + b0;
    routed.skip_exchange = r.skip_exchange;
    routed.skip_experts = r.skip_experts;
    for (const auto& l : r.losses) {
      auto it = losses.find(l.name);
      if (it == losses.end()) {
        losses[l.name] = {l.value, l.coef};
      } else {
        it->second.first = it->second.first + l.value;
      }
    }
    const auto [n_real, ent] = GroupStatistics(r, pad_g, ctx.real_tokens, x_g, ctx.statistics);
    pending.real_tokens = AddTo(pending.real_tokens, n_real);
    if (ent.defined()) pending.entropy_sum = AddTo(pending.entropy_sum, ent);
    if (r.deferred.defined()) {
      // Kept and dropped choices stay on the device with the other statistics; the lists are
      // cut to the kept part once the split sizes are read (their sum is the kept count).
      pending.choices = AddTo(pending.choices, (r.deferred[0] + r.deferred[1]).to(at::kDouble));
      pending.dropped = AddTo(pending.dropped, r.deferred[1].to(at::kDouble));
    } else {
      stats.choices += r.choices;
      stats.dropped += r.dropped;
    }
    // Each group adds its share; on ranks ReduceLayerStats' sum over ranks makes the mean.
    for (const auto& [name, v] : r.stats) stats.router_stats[name] += v / static_cast<double>(w);
    routed.groups.push_back(g);
    routed.routings.push_back(std::move(r));
    routed.real_tokens.push_back(ctx.real_tokens);
  }
  stats.exchange_skipped = routed.skip_exchange;
  stats.experts_skipped = routed.skip_experts;
  stats.statistics = routed.statistics = ctx_in.statistics;

  // Aux losses: per group, then averaged over groups (mesh-TF: per core, mean over cores). A
  // rank adds its group's losses / W; the data-parallel gradient sum makes the mean.
  aux_ = at::zeros({}, x.options().dtype(at::kFloat));
  if (!routed.skip_experts) {
    for (auto& [name, value_coef] : losses) {
      const at::Tensor mean = value_coef.first / static_cast<double>(w);
      pending.losses[name] = mean.detach();
      aux_ = aux_ + value_coef.second * mean;
    }
  }
  return routed;
}

void MoeLayerImpl::CountRows(const ExchangePlan& plan, const std::vector<int>& groups, int w,
                             int rank, MoeLayerStats& stats) {
  const std::vector<int64_t>& rows = plan.forward.rows;  // rows[g * W + h]: group g to worker h
  for (int g : groups) {
    for (int h = 0; h < w; ++h) {
      if (g != h) stats.rows_cross_worker += rows[g * w + h];
    }
  }
  expert_flops_ += 4.0 * static_cast<double>(stats.rows) * static_cast<double>(opt_.d_model) *
                   static_cast<double>(opt_.d_hidden);
  // The rows each worker's experts compute; on a rank this rank's entry only.
  std::vector<int64_t> per_worker(w, 0);
  for (int h = 0; h < w; ++h) {
    if (rank >= 0 && h != rank) continue;
    for (int g = 0; g < w; ++g) per_worker[h] += rows[g * w + h];
  }
  AddWorkerExpertFlops(per_worker);
}

// One forward path for one process playing W workers and for a rank of a process group: route
// the groups, read (or all-gather) the split sizes, plan the exchange, run the experts,
// combine. Only how split sizes and rows travel differs (ShareSplitSizes, ExchangeAsRank).
at::Tensor MoeLayerImpl::forward(const at::Tensor& x, const at::Tensor& pad,
                                 const RouteContext& ctx) {
  at::Tensor y = RoutedForward(x, pad, ctx);
  // Shared experts: every token, weight 1, on its own worker (no exchange, no bytes). Their
  // FLOPs are in the model's non-expert count (Note [Compute model]).
  if (shared_) y = y + shared_->ForwardOne(0, x.to(MatmulDtype(x))).to(y.scalar_type());
  return y;
}

at::Tensor MoeLayerImpl::RoutedForward(const at::Tensor& x, const at::Tensor& pad,
                                       const RouteContext& ctx) {
  const bool on_rank = !replica_comm_ && !comm_->plays_all_workers();
  Comm& comm = replica_comm_ ? *replica_comm_ : *comm_;
  const Experts& ex = replica_ ? *replica_ : *experts_;
  const Topology& topo = comm.topology();
  const int w = topo.workers;
  const int rank = on_rank ? comm.rank() : -1;
  const int64_t t = x.size(0);
  const int64_t e = opt_.num_experts;
  if (on_rank) CheckRankExperts(rank, w);

  // 1. Route each group.
  MoeLayerStats stats;
  PendingStats pending;
  RoutedGroups routed = RouteGroups(x, pad, ctx, topo, rank, stats, pending);
  // The rows the experts see (and the exchange moves): in the autocast dtype if any.
  const at::Tensor xc = x.to(MatmulDtype(x));
  if (opt_.static_shapes && ctx.training) {
    if (replica_comm_) {
      throw std::invalid_argument("moe_path static: not with the gathered evaluation replica");
    }
    return StaticForward(xc, routed, ctx, rank, stats, pending);
  }

  // 2. Who sends what to whom: the split sizes, the one host read (Note [Host
  // synchronisation]); the deferred lists are cut to their kept part.
  const bool move = !routed.skip_exchange && (on_rank || w > 1);
  const SplitSizes sizes = on_rank ? ShareSplitSizes(routed.routings[0], comm, opt_.index, e,
                                                     !routed.skip_exchange && !routed.skip_experts)
                                   : ReadSplitSizes(routed.routings, e, x);
  const LayerRows rows = JoinKept(routed.routings, routed.groups, sizes, assignments_);
  stats.node_counts = topo.num_nodes() > 1 && ctx.statistics;
  if (stats.node_counts) {
    std::tie(pending.other_node_copies, pending.nodes_per_token_max) =
        CountNodeCopies(rows, topo, e, t, rank);
  }
  // Tokens per expert of this process's groups (on a rank its own; summed when logged).
  stats.tokens_per_expert.assign(e, 0);
  for (int g : routed.groups) {
    for (int64_t j = 0; j < e; ++j) stats.tokens_per_expert[j] += sizes.Rows(g, j);
  }
  if (routed.skip_experts) {
    Publish(stats, std::move(pending));
    return at::zeros_like(x);
  }

  // 3. The exchange plan: rows per worker pair and their wire bytes.
  stats.rows = rows.token.size(0);
  const int64_t row_bytes = opt_.d_model * static_cast<int64_t>(xc.element_size());
  const ExchangePlan plan = MakeExchangePlan(sizes, opt_.index, row_bytes, format_, move, rank);
  if (routed.skip_exchange) CheckRowsStayLocal(plan, routed.groups, w);
  if (move && !on_rank) {
    // What W real workers exchange first: every worker's expert counts and capacity (a rank
    // counts its all-gather in ShareSplitSizes), so one process and W ranks report the same.
    RecordSplitSizeExchange(comm, opt_.index, e, 0.0, -1);
  }
  CountRows(plan, routed.groups, w, rank, stats);
  Publish(stats, std::move(pending));

  // 4. The experts this process holds, fed in place or through the exchange; 5. combine.
  const int64_t first = on_rank ? first_expert_ : 0;
  const std::vector<int64_t> expert_rows(
      stats.tokens_per_expert.begin() + first,
      stats.tokens_per_expert.begin() + first + ex.num_experts());
  if (!move) return ComputeInPlace(comm, ex, xc, rows, expert_rows, plan, t);
  if (on_rank) return ExchangeAsRank(comm, ex, xc, rows, sizes, plan, first, t);
  return ExchangeAsOneProcess(comm, ex, xc, rows, expert_rows, plan, e, t);
}

}  // namespace moebench
