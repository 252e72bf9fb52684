#include "harness/moe/moe_layer.h"

#include <algorithm>
#include <stdexcept>

#include "harness/moe/dispatch.h"
#include "harness/moe/exchange.h"
#include "harness/torch_compat.h"

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

at::Tensor MoeLayerImpl::forward(const at::Tensor& x, const at::Tensor& pad,
                                 const RouteContext& ctx_in) {
  const Topology& topo = comm_->topology();
  const int w = topo.workers;
  const int64_t t = x.size(0);
  const int64_t e = opt_.num_experts;
  const int64_t e_loc = e / w;

  // 1. Route each worker's block of tokens as its own group.
  std::vector<at::Tensor> tok, exp, slot, wt, src;
  std::vector<int64_t> group_capacity(w, 0);
  std::map<std::string, std::pair<at::Tensor, double>> losses;
  MoeLayerStats stats;
  bool skip_exchange = false;
  bool skip_experts = false;
  double entropy_sum = 0;
  int64_t max_capacity = 0;
  for (int g = 0; g < w; ++g) {
    const int64_t b0 = BlockBegin(t, w, g);
    const int64_t b1 = BlockBegin(t, w, g + 1);
    RouteContext ctx = ctx_in;
    ctx.group = g;
    ctx.topology = topo;
    ctx.decoder = opt_.decoder;
    ctx.layer = opt_.index;
    const at::Tensor pad_g = pad.defined() ? pad.narrow(0, b0, b1 - b0) : at::Tensor();
    Routing r = router_->Route(x.narrow(0, b0, b1 - b0), pad_g, ctx);
    skip_exchange = r.skip_exchange;
    skip_experts = r.skip_experts;
    int64_t cap = r.capacity;
    if (cap == 0 && r.expert.numel() > 0) {
      cap = at::bincount(r.expert, {}, e).max().item<int64_t>();  // dynamic capacity
    }
    group_capacity[g] = cap;
    max_capacity = std::max(max_capacity, cap);
    tok.push_back(r.token + b0);
    exp.push_back(r.expert);
    slot.push_back(r.slot);
    wt.push_back(r.weight);
    src.push_back(at::full({r.token.size(0)}, g, at::kLong));
    for (const auto& l : r.losses) {
      auto it = losses.find(l.name);
      if (it == losses.end()) {
        losses[l.name] = {l.value, l.coef};
      } else {
        it->second.first = it->second.first + l.value;
      }
    }
    const int64_t n_real = pad_g.defined() ? pad_g.sum().item<int64_t>() : (b1 - b0);
    stats.real_tokens += n_real;
    stats.choices += r.choices;
    stats.dropped += r.dropped;
    if (r.probs.defined() && n_real > 0) {
      at::Tensor ent = -(r.probs * at::log(r.probs.clamp_min(1e-9))).sum(-1);
      if (pad_g.defined()) ent = ent * pad_g.to(at::kFloat);
      entropy_sum += ent.sum().item<double>();
    }
  }
  stats.entropy = stats.real_tokens > 0 ? entropy_sum / static_cast<double>(stats.real_tokens) : 0;
  stats.exchange_skipped = skip_exchange;
  stats.experts_skipped = skip_experts;

  // Aux losses: per group, then averaged over groups (mesh-TF: per core, mean over cores).
  aux_ = at::zeros({}, at::kFloat);
  if (!skip_experts) {
    for (auto& [name, value_coef] : losses) {
      const at::Tensor mean = value_coef.first / static_cast<double>(w);
      stats.losses[name] = mean.item<double>();
      aux_ = aux_ + value_coef.second * mean;
    }
  }

  at::Tensor token = at::cat(tok);
  at::Tensor expert = at::cat(exp);
  at::Tensor weight = at::cat(wt);
  at::Tensor source = at::cat(src);
  assignments_ = {token, expert, at::cat(slot) + source * max_capacity, weight,
                  std::max<int64_t>(max_capacity * w, 1)};
  stats.tokens_per_expert.assign(e, 0);
  if (skip_experts) {
    stats_ = stats;
    return at::zeros_like(x);
  }

  // 2. Who sends what to whom.
  const at::Tensor dest = at::div(expert, e_loc, "floor");
  const at::Tensor pair_counts = at::bincount(source * w + dest, {}, static_cast<int64_t>(w) * w);
  std::vector<int64_t> rows(pair_counts.data_ptr<int64_t>(),
                            pair_counts.data_ptr<int64_t>() + w * w);
  const int64_t row_bytes = opt_.d_model * static_cast<int64_t>(x.element_size());
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

  const at::Tensor counts_t = at::bincount(expert, {}, e);
  const std::vector<int64_t> counts(counts_t.data_ptr<int64_t>(), counts_t.data_ptr<int64_t>() + e);
  stats.tokens_per_expert = counts;
  ExchangeSpec back_spec = spec;
  back_spec.rows = TransposeSquare(spec.rows, w);
  back_spec.wire_bytes = TransposeSquare(spec.wire_bytes, w);
  expert_flops_ += 4.0 * static_cast<double>(stats.rows) * static_cast<double>(opt_.d_model) *
                   static_cast<double>(opt_.d_hidden);
  stats_ = stats;

  if (!spec.move) {
    // Nothing crosses workers: the rows the experts see are the send buffer itself, and
    // grouping it by (source, expert) and then stably by expert is one stable sort by expert
    // (assignments are concatenated by source). One gather, the experts, one combine.
    const at::Tensor order = compat::StableArgsort(expert);
    const at::Tensor tok_sorted = token.index_select(0, order);
    const at::Tensor recv = MeteredExchange(*comm_, GatherRows(x, tok_sorted), spec);
    const at::Tensor out =
        MeteredExchange(*comm_, experts_->ForwardGrouped(recv, counts), back_spec);
    return CombineRows(out, tok_sorted, weight.index_select(0, order), t);
  }

  // 3. Send buffer: grouped by (source worker, expert), which is (source, destination) blocks.
  const at::Tensor send_order = compat::StableArgsort(source * e + expert);
  const at::Tensor send_token = token.index_select(0, send_order);
  const at::Tensor send_expert = expert.index_select(0, send_order);
  const at::Tensor send_source = source.index_select(0, send_order);
  const at::Tensor recv = MeteredExchange(*comm_, GatherRows(x, send_token), spec);

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
  const at::Tensor expert_out = experts_->ForwardGrouped(recv.index_select(0, gather), counts);
  const at::Tensor back = at::empty_like(expert_out).index_copy(0, gather, expert_out);
  const at::Tensor out = MeteredExchange(*comm_, back, back_spec);  // in send order again

  // 5. Combine: weighted scatter-add back into token positions.
  return CombineRows(out, send_token, weight.index_select(0, send_order), t);
}

}  // namespace moebench
