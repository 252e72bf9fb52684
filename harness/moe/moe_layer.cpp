#include "harness/moe/moe_layer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "harness/autocast.h"
#include "harness/host_read.h"
#include "harness/model/compute_model.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/exchange.h"
#include "harness/torch_compat.h"
#include "harness/util/time.h"
#include "methods/routing_util.h"

namespace moebench {

MoeLayerImpl::MoeLayerImpl(MoeLayerOptions opt, std::shared_ptr<Router> router, Comm* comm)
    : opt_(std::move(opt)), comm_(comm) {
  if (!comm_) throw std::invalid_argument("MoeLayer: comm must not be null");
  if (opt_.exchange != "padded" && opt_.exchange != "compact") {
    throw std::invalid_argument("MoeLayer: exchange must be padded or compact, got '" +
                                opt_.exchange + "'");
  }
  comm_->topology().Validate(static_cast<int>(opt_.num_experts));
  router_ = register_module("router", std::move(router));
  experts_ = register_module(
      "experts", std::make_shared<Experts>(opt_.num_experts, opt_.d_model, opt_.d_hidden));
  aux_ = at::zeros({}, at::kFloat);
}

namespace {

// The split-size exchange as an all-gather: every worker sends `bytes` to every other worker.
void RecordCountsExchange(Comm& comm, int layer, int64_t bytes, double ms, int only_source) {
  const int w = comm.topology().workers;
  std::vector<int64_t> rows(static_cast<size_t>(w) * w, 1), wire(rows.size(), bytes);
  for (int i = 0; i < w; ++i) {
    rows[i * w + i] = 0;
    wire[i * w + i] = 0;
  }
  comm.meter().Record(layer, "counts", comm.topology(), rows, bytes, wire, 1, ms, only_source);
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
// undefined without router probabilities), as fp64 device scalars: no host read. real_tokens:
// the count known on the host, or -1 to count `pad` (all of x's rows are real without one).
std::pair<at::Tensor, at::Tensor> GroupStatistics(const Routing& r, const at::Tensor& pad,
                                                  int64_t real_tokens, const at::Tensor& x) {
  at::NoGradGuard no_grad;  // statistics: no graph for the entropy's ops
  const at::Tensor n =
      pad.defined() && real_tokens < 0
          ? pad.sum().to(at::kDouble)
          : at::full({}, static_cast<double>(real_tokens >= 0 ? real_tokens : x.size(0)),
                     x.options().dtype(at::kDouble));
  at::Tensor entropy;
  if (r.probs.defined()) {
    at::Tensor ent = -(r.probs * at::log(r.probs.clamp_min(1e-9))).sum(-1);
    if (pad.defined()) ent = ent * pad.to(at::kFloat);
    entropy = ent.sum().to(at::kDouble);
  }
  return {n, entropy};
}

}  // namespace

std::vector<int64_t> MoeLayerImpl::WireBytes(const std::vector<int64_t>& rows,
                                             const std::vector<int64_t>& group_capacity,
                                             int64_t row_bytes) const {
  const int w = comm_->topology().workers;
  const int64_t e_loc = opt_.num_experts / w;
  std::vector<int64_t> wire(rows.size(), 0);
  for (int src = 0; src < w; ++src) {
    for (int dst = 0; dst < w; ++dst) {
      if (src == dst) continue;  // never leaves the worker
      const int64_t n = rows[src * w + dst];
      if (opt_.exchange == "padded") {
        wire[src * w + dst] = e_loc * group_capacity[src] * row_bytes;
      } else {
        wire[src * w + dst] = n * row_bytes + static_cast<int64_t>(sizeof(int64_t));
      }
    }
  }
  return wire;
}

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
  for (const auto& [name, v] : pending_.losses) add(v);
  const at::Tensor host = HostRead(at::cat(parts));  // one copy
  const double* h = host.data_ptr<double>();
  stats_.real_tokens = static_cast<int64_t>(std::llround(h[0]));
  stats_.entropy_sum = h[1];
  stats_.entropy =
      stats_.real_tokens > 0 ? stats_.entropy_sum / static_cast<double>(stats_.real_tokens) : 0;
  stats_.choices += static_cast<int64_t>(std::llround(h[2]));
  stats_.dropped += static_cast<int64_t>(std::llround(h[3]));
  stats_.losses.clear();
  size_t i = 4;
  for (const auto& [name, v] : pending_.losses) stats_.losses[name] = h[i++];
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

at::Tensor MoeLayerImpl::forward(const at::Tensor& x, const at::Tensor& pad,
                                 const RouteContext& ctx_in) {
  if (!replica_comm_ && !comm_->plays_all_workers()) return ForwardRank(x, pad, ctx_in);
  Comm& comm = replica_comm_ ? *replica_comm_ : *comm_;
  const Experts& ex = replica_ ? *replica_ : *experts_;
  const Topology& topo = comm.topology();
  const int w = topo.workers;
  const int64_t t = x.size(0);
  const int64_t e = opt_.num_experts;
  const int64_t e_loc = e / w;

  // 1. Route each worker's block of tokens as its own group.
  std::vector<Routing> routed(w);  // lists may be deferred (Routing::deferred) until step 2
  std::vector<int64_t> router_capacity(w, 0);  // 0: dynamic (the most rows any expert got)
  std::map<std::string, std::pair<at::Tensor, double>> losses;
  MoeLayerStats stats;
  bool skip_exchange = false;
  bool skip_experts = false;
  at::Tensor real_tokens, entropy_sum;  // device scalars, read when the stats are (Note below)
  const int64_t per_sentence = ctx_in.tokens_per_sentence;
  const std::vector<int64_t>* lengths = HostLengths(ctx_in, opt_.decoder, t);
  for (int g = 0; g < w; ++g) {
    const int64_t b0 = GroupBegin(t, per_sentence, w, g);
    const int64_t b1 = GroupBegin(t, per_sentence, w, g + 1);
    RouteContext ctx = ctx_in;
    ctx.group = g;
    ctx.topology = topo;
    ctx.decoder = opt_.decoder;
    ctx.layer = opt_.index;
    ctx.real_tokens = lengths ? RealTokensIn(*lengths, per_sentence, b0, b1) : -1;
    ctx.defer_counts = true;
    const at::Tensor pad_g = pad.defined() ? pad.narrow(0, b0, b1 - b0) : at::Tensor();
    // The whole input when there is one group: a narrow's backward would allocate and fill a
    // zero gradient of x's size and copy into it.
    const at::Tensor x_g = (b0 == 0 && b1 == t) ? x : x.narrow(0, b0, b1 - b0);
    Routing& r = routed[g];
    {
      NoAutocast fp32_router(x.device().type());  // Note [Device and precision]
      r = router_->Route(x_g, pad_g, ctx);
    }
    if (b0 != 0) r.token = r.token + b0;
    skip_exchange = r.skip_exchange;
    skip_experts = r.skip_experts;
    router_capacity[g] = r.capacity;
    for (const auto& l : r.losses) {
      auto it = losses.find(l.name);
      if (it == losses.end()) {
        losses[l.name] = {l.value, l.coef};
      } else {
        it->second.first = it->second.first + l.value;
      }
    }
    const auto [n_real, ent] = GroupStatistics(r, pad_g, ctx.real_tokens, x_g);
    real_tokens = real_tokens.defined() ? real_tokens + n_real : n_real;
    if (ent.defined()) entropy_sum = entropy_sum.defined() ? entropy_sum + ent : ent;
    if (!r.deferred.defined()) {
      stats.choices += r.choices;
      stats.dropped += r.dropped;
    }
    for (const auto& [name, v] : r.stats) stats.router_stats[name] += v / static_cast<double>(w);
  }
  stats.exchange_skipped = skip_exchange;
  stats.experts_skipped = skip_experts;
  // The rows the experts see (and the exchange moves): in the autocast dtype if any.
  const at::Tensor xc = x.to(MatmulDtype(x));

  // Aux losses: per group, then averaged over groups (mesh-TF: per core, mean over cores).
  PendingStats pending{real_tokens, entropy_sum, {}};
  aux_ = at::zeros({}, x.options().dtype(at::kFloat));
  if (!skip_experts) {
    for (auto& [name, value_coef] : losses) {
      const at::Tensor mean = value_coef.first / static_cast<double>(w);
      pending.losses[name] = mean.detach();
      aux_ = aux_ + value_coef.second * mean;
    }
  }

  // 2. Who sends what to whom: rows per (group, expert), the one copy to the host (Note
  // [Host synchronisation]), with the deferred routers' kept/dropped counts. Per-expert
  // counts, worker-pair rows and dynamic capacities (a router that sets none: the most rows
  // any expert got in the group) all come from it; deferred lists are cut to their kept part.
  std::vector<at::Tensor> keys, kept_masks, deferred;
  for (int g = 0; g < w; ++g) {
    const Routing& r = routed[g];
    keys.push_back(g * e + r.expert);
    kept_masks.push_back(r.deferred.defined() ? DeferredKeptMask(r).to(at::kLong)
                                              : at::ones_like(r.expert));
    if (r.deferred.defined()) deferred.push_back(r.deferred);
  }
  const at::Tensor group_expert_dev =
      at::zeros({w * e}, x.options().dtype(at::kLong)).index_add_(0, Join(keys), Join(kept_masks));
  deferred.insert(deferred.begin(), group_expert_dev);
  const at::Tensor host_counts = HostRead(at::cat(deferred));  // the one copy
  const int64_t* ge = host_counts.data_ptr<int64_t>();
  const int64_t* dc = ge + w * e;  // 3 per deferred group: kept, dropped, inactive
  std::vector<at::Tensor> tok, exp, slot, wt, src;
  for (int g = 0; g < w; ++g) {
    Routing& r = routed[g];
    if (r.deferred.defined()) {
      const int64_t kept = dc[0], dropped = dc[1];
      dc += 3;
      KeepFirstChoices(r, kept);
      stats.choices += kept + dropped;
      stats.dropped += dropped;
    }
    tok.push_back(r.token);
    exp.push_back(r.expert);
    slot.push_back(r.slot);
    wt.push_back(r.weight);
    src.push_back(at::full({r.token.size(0)}, g, r.token.options()));
  }
  at::Tensor token = Join(tok);
  at::Tensor expert = Join(exp);
  at::Tensor weight = Join(wt);
  at::Tensor source = Join(src);
  std::vector<int64_t> counts(e, 0), rows(static_cast<size_t>(w) * w, 0), group_capacity(w, 0);
  int64_t max_capacity = 0;
  for (int g = 0; g < w; ++g) {
    int64_t most = 0;
    for (int64_t j = 0; j < e; ++j) {
      const int64_t n = ge[g * e + j];
      counts[j] += n;
      rows[g * w + j / e_loc] += n;
      most = std::max(most, n);
    }
    group_capacity[g] = router_capacity[g] > 0 ? router_capacity[g] : most;
    max_capacity = std::max(max_capacity, group_capacity[g]);
  }
  assignments_ = {token, expert, w == 1 ? Join(slot) : Join(slot) + source * max_capacity, weight,
                  std::max<int64_t>(max_capacity * w, 1)};
  stats.tokens_per_expert.assign(e, 0);
  if (skip_experts) {
    Publish(stats, pending);
    return at::zeros_like(x);
  }
  const int64_t row_bytes = opt_.d_model * static_cast<int64_t>(xc.element_size());
  ExchangeSpec spec;
  spec.layer = opt_.index;
  spec.rows = rows;
  spec.move = (w > 1) && !skip_exchange;
  spec.wire_bytes =
      spec.move ? WireBytes(rows, group_capacity, row_bytes) : std::vector<int64_t>(rows.size(), 0);
  for (int g = 0; g < w; ++g) {
    for (int h = 0; h < w; ++h) {
      if (g != h) stats.rows_cross_worker += rows[g * w + h];
    }
  }
  stats.rows = token.size(0);
  if (spec.move) {
    // What W real workers exchange first: every worker's expert counts and capacity (see
    // ForwardRank), counted so that one process and W ranks report the same bytes.
    RecordCountsExchange(comm, opt_.index, (e + 1) * static_cast<int64_t>(sizeof(int64_t)), 0.0,
                         -1);
  }

  stats.tokens_per_expert = counts;
  ExchangeSpec back_spec = spec;
  back_spec.rows = TransposeSquare(spec.rows, w);
  back_spec.wire_bytes = TransposeSquare(spec.wire_bytes, w);
  expert_flops_ += 4.0 * static_cast<double>(stats.rows) * static_cast<double>(opt_.d_model) *
                   static_cast<double>(opt_.d_hidden);
  {
    // The rows each worker's experts compute (rows[g * W + h]: group g to worker h).
    std::vector<int64_t> per_worker(w, 0);
    for (int g = 0; g < w; ++g) {
      for (int h = 0; h < w; ++h) per_worker[h] += rows[g * w + h];
    }
    AddWorkerExpertFlops(per_worker);
  }
  Publish(stats, pending);

  if (!spec.move) {
    // Nothing crosses workers: the rows the experts see are the send buffer itself, and
    // grouping it by (source, expert) and then stably by expert is one stable sort by expert
    // (assignments are concatenated by source). One gather, the experts, one combine.
    const at::Tensor order = compat::StableArgsort(expert);
    const at::Tensor tok_sorted = token.index_select(0, order);
    const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, tok_sorted), spec);
    const at::Tensor out = MeteredExchange(comm, ex.ForwardGrouped(recv, counts), back_spec);
    return CombineRows(out, tok_sorted, weight.index_select(0, order), t);
  }

  // 3. Send buffer: grouped by (source worker, expert), which is (source, destination) blocks.
  const at::Tensor send_order = compat::StableArgsort(source * e + expert);
  const at::Tensor send_token = token.index_select(0, send_order);
  const at::Tensor send_expert = expert.index_select(0, send_order);
  const at::Tensor send_source = source.index_select(0, send_order);
  const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, send_token), spec);

  // 4. Local experts. Received rows come in (destination, source, expert) order; regroup by
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
  const at::Tensor expert_out = ex.ForwardGrouped(recv.index_select(0, gather), counts);
  const at::Tensor back = at::empty_like(expert_out).index_copy(0, gather, expert_out);
  const at::Tensor out = MeteredExchange(comm, back, back_spec);  // in send order again

  // 5. Combine: weighted scatter-add back into token positions.
  return CombineRows(out, send_token, weight.index_select(0, send_order), t);
}

// Note [Expert parallelism]: with a process group, rank r holds experts
// [r*E/W, (r+1)*E/W) and its own sentences of the batch, which are exactly the tokens of virtual
// worker r (Note [Token blocks]). It routes them as group r, exchanges its expert counts and
// capacity with every rank (one all-gather: the split sizes), sends its rows with one
// variable-size all-to-all, regroups the received rows by local expert, runs its experts, and
// sends the results back the same way. Every rank counts only the rows it sends itself; the
// trainer sums the byte counters and the routing statistics over ranks at each log step.
at::Tensor MoeLayerImpl::ForwardRank(const at::Tensor& x, const at::Tensor& pad,
                                     const RouteContext& ctx_in) {
  Comm& comm = *comm_;
  const Topology& topo = comm.topology();
  const int w = topo.workers;
  const int rank = comm.rank();
  const int64_t t = x.size(0);
  const int64_t e = opt_.num_experts;
  const int64_t e_loc = e / w;
  const int64_t first = static_cast<int64_t>(rank) * e_loc;
  if (experts_->num_experts() != e_loc || first_expert_ != first) {
    throw std::logic_error("MoeLayer: rank " + std::to_string(rank) + " must hold experts [" +
                           std::to_string(first) + ", " + std::to_string(first + e_loc) +
                           ") (KeepExperts)");
  }
  RouteContext ctx = ctx_in;
  ctx.group = rank;
  ctx.topology = topo;
  ctx.decoder = opt_.decoder;
  ctx.layer = opt_.index;
  const std::vector<int64_t>* lengths = HostLengths(ctx_in, opt_.decoder, t);
  ctx.real_tokens = lengths ? RealTokensIn(*lengths, ctx.tokens_per_sentence, 0, t) : -1;
  ctx.defer_counts = true;
  Routing r;
  {
    NoAutocast fp32_router(x.device().type());  // Note [Device and precision]
    r = router_->Route(x, pad, ctx);
  }
  // The rows the experts see (and the all-to-all moves): in the autocast dtype if any.
  const at::Tensor xc = x.to(MatmulDtype(x));

  MoeLayerStats stats;
  stats.exchange_skipped = r.skip_exchange;
  stats.experts_skipped = r.skip_experts;
  // Each rank adds its group's share; ReduceLayerStats' sum over ranks makes the mean.
  for (const auto& [name, v] : r.stats) stats.router_stats[name] = v / static_cast<double>(w);
  PendingStats pending;
  if (r.deferred.defined()) {
    // Kept and dropped choices stay on the device with the other statistics; the lists are cut
    // to the kept part once the split sizes are read (their sum is the kept count).
    pending.choices = (r.deferred[0] + r.deferred[1]).to(at::kDouble);
    pending.dropped = r.deferred[1].to(at::kDouble);
  } else {
    stats.choices = r.choices;
    stats.dropped = r.dropped;
  }
  std::tie(pending.real_tokens, pending.entropy_sum) = GroupStatistics(r, pad, ctx.real_tokens, x);
  // Each rank adds its group's losses / W; the data-parallel gradient sum makes the mean.
  aux_ = at::zeros({}, x.options().dtype(at::kFloat));
  if (!r.skip_experts) {
    for (const auto& l : r.losses) {
      const at::Tensor mean = l.value / static_cast<double>(w);
      at::Tensor& p = pending.losses[l.name];
      p = p.defined() ? p + mean.detach() : mean.detach();
      aux_ = aux_ + l.coef * mean;
    }
  }

  // This rank's rows per expert and its capacity (the router's, or the most rows any expert
  // got), on the device. They reach the host once (Note [Host synchronisation]): with every
  // other rank's in the split-size all-gather, or alone in a step without exchange.
  const at::Tensor counts_dev =
      r.deferred.defined() ? at::zeros({e}, r.expert.options())
                                 .index_add_(0, r.expert, DeferredKeptMask(r).to(at::kLong))
                           : CountsOf(r.expert, e);
  const at::Tensor cap_dev =
      r.capacity > 0 ? at::full({1}, r.capacity, counts_dev.options()) : counts_dev.max().view({1});
  const at::Tensor mine = at::cat({counts_dev, cap_dev});  // [E + 1]
  at::Tensor all;                                          // [W, E + 1] on the host
  const int64_t* c = nullptr;
  int mine_row = 0;
  if (r.skip_experts || r.skip_exchange) {
    all = HostRead(mine);
  } else {
    // 1. The split sizes: every rank's expert counts and capacity, one all-gather.
    const double g0 = SteadyNowMs();
    all = HostRead(comm.AllGather(mine));
    RecordCountsExchange(comm, opt_.index, (e + 1) * static_cast<int64_t>(sizeof(int64_t)),
                         SteadyNowMs() - g0, rank);
    mine_row = rank;
  }
  c = all.data_ptr<int64_t>();
  const std::vector<int64_t> counts(c + mine_row * (e + 1), c + mine_row * (e + 1) + e);
  const int64_t cap = c[mine_row * (e + 1) + e];
  if (r.deferred.defined()) {
    int64_t kept = 0;
    for (int64_t n : counts) kept += n;
    KeepFirstChoices(r, kept);
  }
  assignments_ = {r.token, r.expert, r.slot, r.weight, std::max<int64_t>(cap, 1)};
  stats.tokens_per_expert = counts;  // this rank's tokens; summed over ranks when logged
  if (r.skip_experts) {
    Publish(stats, pending);
    return at::zeros_like(x);
  }
  stats.rows = r.token.size(0);
  expert_flops_ += 4.0 * static_cast<double>(stats.rows) * static_cast<double>(opt_.d_model) *
                   static_cast<double>(opt_.d_hidden);
  const int64_t row_bytes = opt_.d_model * static_cast<int64_t>(xc.element_size());
  const std::vector<int64_t> local_counts(counts.begin() + first, counts.begin() + first + e_loc);

  ExchangeSpec spec;
  spec.layer = opt_.index;
  spec.only_source = rank;
  spec.rows.assign(static_cast<size_t>(w) * w, 0);
  if (r.skip_exchange) {
    // Tokens stay on their rank (gating dropout): the router chose local experts only.
    int64_t local = 0;
    for (int64_t n : local_counts) local += n;
    if (local != stats.rows) {
      throw std::logic_error("MoeLayer: a step without exchange routed tokens to another rank");
    }
    spec.move = false;
    spec.rows[rank * w + rank] = stats.rows;
    spec.wire_bytes.assign(spec.rows.size(), 0);
    std::vector<int64_t> per_worker(w, 0);  // this rank's entry only; the trainer sums ranks
    per_worker[rank] = stats.rows;
    AddWorkerExpertFlops(per_worker);
    ExchangeSpec back_spec = spec;
    Publish(stats, pending);
    const at::Tensor order = compat::StableArgsort(r.expert);
    const at::Tensor tok_sorted = r.token.index_select(0, order);
    const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, tok_sorted), spec);
    const at::Tensor out =
        MeteredExchange(comm, experts_->ForwardGrouped(recv, local_counts), back_spec);
    return CombineRows(out, tok_sorted, r.weight.index_select(0, order), t);
  }

  auto count = [&](int s, int64_t expert) { return c[s * (e + 1) + expert]; };
  std::vector<int64_t> group_capacity(w);
  for (int s = 0; s < w; ++s) {
    group_capacity[s] = count(s, e);
    for (int d = 0; d < w; ++d) {
      int64_t n = 0;
      for (int64_t j = 0; j < e_loc; ++j) n += count(s, d * e_loc + j);
      spec.rows[s * w + d] = n;
    }
  }
  for (int d = 0; d < w; ++d) {
    if (d != rank) stats.rows_cross_worker += spec.rows[rank * w + d];
  }
  {
    std::vector<int64_t> per_worker(w, 0);  // this rank's entry only; the trainer sums ranks
    for (int src = 0; src < w; ++src) per_worker[rank] += spec.rows[src * w + rank];
    AddWorkerExpertFlops(per_worker);
  }
  spec.move = true;
  spec.wire_bytes = WireBytes(spec.rows, group_capacity, row_bytes);
  ExchangeSpec back_spec = spec;
  back_spec.rows = TransposeSquare(spec.rows, w);
  back_spec.wire_bytes = TransposeSquare(spec.wire_bytes, w);
  Publish(stats, pending);

  // 2. Send this rank's rows grouped by expert (hence by destination rank).
  const at::Tensor send_order = compat::StableArgsort(r.expert);
  const at::Tensor send_token = r.token.index_select(0, send_order);
  const at::Tensor recv = MeteredExchange(comm, GatherRows(xc, send_token), spec);

  // 3. Received rows come by source rank, each source's rows by expert; regroup by expert.
  std::vector<int64_t> gather_idx;
  gather_idx.reserve(static_cast<size_t>(recv.size(0)));
  std::vector<int64_t> expert_rows(e_loc, 0);
  std::vector<int64_t> source_offset(w + 1, 0);
  for (int s = 0; s < w; ++s) source_offset[s + 1] = source_offset[s] + spec.rows[s * w + rank];
  std::vector<int64_t> cursor(source_offset.begin(), source_offset.end() - 1);
  for (int64_t j = 0; j < e_loc; ++j) {
    for (int s = 0; s < w; ++s) {
      const int64_t n = count(s, first + j);
      for (int64_t i = 0; i < n; ++i) gather_idx.push_back(cursor[s] + i);
      cursor[s] += n;
      expert_rows[j] += n;
    }
  }
  const at::Tensor gather =
      OnDeviceOf(at::tensor(gather_idx, at::TensorOptions().dtype(at::kLong)), recv);
  const at::Tensor expert_out = experts_->ForwardGrouped(recv.index_select(0, gather), expert_rows);
  const at::Tensor back = at::empty_like(expert_out).index_copy(0, gather, expert_out);
  const at::Tensor out = MeteredExchange(comm, back, back_spec);  // in send order again

  // 4. Combine into this rank's token positions.
  return CombineRows(out, send_token, r.weight.index_select(0, send_order), t);
}

}  // namespace moebench
