#include "methods/base.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include <torch/nn/init.h>

#include "methods/routing_util.h"

namespace moebench {

// Note [BASE assignment]: training routes the real tokens of one group (one worker's tokens) so
// that expert e gets exactly quota[e] of them (BalancedQuotas: n/E each when E divides n, as
// fairseq requires; otherwise floor or ceil), maximising sum_t a[t, e_t]: a transportation
// problem, solved on the CPU after one host read of the group's affinities.
// - `auction` (default) is fairseq's libbase balanced_assignment, with per-expert quotas in
//   place of its one jobs_per_worker: each round every expert bids on its top quota[e] tokens by
//   value (score - price) an increment value - (quota[e]+1)-th value + eps, last round's winners
//   also get a minimal bid eps, each token goes to its highest bidder (ties: the lower expert)
//   and its price rises by that bid; the winners' values are set to the largest score so they
//   stay in their expert's top set. When every token has a bid the experts' top sets partition
//   the tokens (they bid on sum quota = n tokens in all). After auction_max_iters rounds the
//   minimal bids stop and winners' values fall back to their raw scores (fairseq's "suboptimal
//   approximation that converges quickly"). eps = max((max - min) * auction_eps_frac,
//   auction_min_eps). A classic auction ends within n * eps of the optimum; this variant's finish
//   carries no such bound, so tests compare it with the exact solver on small problems. Should
//   it not finish within auction_max_iters + 10000 rounds, or not give a partition, the group is
//   solved exactly (counted in router.base_fallback).
// - `exact`: successive shortest paths. Tokens are added one at a time; each goes to the expert
//   at the end of the cheapest chain "token -> e1, a token of e1 -> e2, ..., -> e_k with room"
//   (Bellman-Ford over the E experts, each hop moving the token of e_i that loses least by
//   moving). Each step keeps the assignment of the tokens added so far optimal, so the last one
//   is optimal: O(n * (n E + E^3)).
// Inference is greedy top-1 (fairseq and the paper: balancing at test time would let future
// tokens decide earlier tokens' experts). The decoder's training assignment does couple a
// batch's tokens (a later target token can move an earlier token's expert), as in the paper.
// Not modelled: fairseq's random shuffle of tokens over workers before the assignment (2 more
// all-to-alls per direction), its residual-stream router input (here: the same normalised
// input every router sees), zero-initialised ff2 and inserted extra layers.

namespace {

// [n, E] scores as doubles, non-finite entries replaced by the smallest finite one.
std::vector<double> CleanScores(const at::Tensor& scores, int64_t n, int64_t e) {
  const at::Tensor s = scores.to(at::kDouble).contiguous();
  std::vector<double> out(s.data_ptr<double>(), s.data_ptr<double>() + n * e);
  double lo = std::numeric_limits<double>::infinity();
  for (double v : out) {
    if (std::isfinite(v)) lo = std::min(lo, v);
  }
  if (!std::isfinite(lo)) lo = 0;
  for (double& v : out) {
    if (!std::isfinite(v)) v = lo;
  }
  return out;
}

void CheckQuotas(const std::vector<int64_t>& quota, int64_t n, int64_t e) {
  if (static_cast<int64_t>(quota.size()) != e) {
    throw std::invalid_argument("balanced assignment: one quota per expert expected");
  }
  int64_t sum = 0;
  for (int64_t q : quota) {
    if (q < 0) throw std::invalid_argument("balanced assignment: negative quota");
    sum += q;
  }
  if (sum != n) {
    throw std::invalid_argument("balanced assignment: quotas sum to " + std::to_string(sum) +
                                ", not to the " + std::to_string(n) + " tokens");
  }
}

// One auction round's bids of expert `e` ([n] bids, zero where none): on its top q tokens by
// value, value - (q+1)-th value + eps; `top` receives those tokens.
void ExpertBids(const double* value, int64_t n, int64_t q, double eps, std::vector<int64_t>& order,
                std::vector<int64_t>& top, double* bids) {
  std::iota(order.begin(), order.end(), 0);
  const int64_t m = std::min(q + 1, n);
  std::partial_sort(order.begin(), order.begin() + m, order.end(), [&](int64_t a, int64_t b) {
    return value[a] > value[b] || (value[a] == value[b] && a < b);
  });
  const double kth = value[order[q]];
  top.assign(order.begin(), order.begin() + q);
  for (int64_t j = 0; j < q; ++j) bids[order[j]] = value[order[j]] - kth + eps;
}

}  // namespace

std::vector<KnobSpec> BaseKnobSpecs() {
  return {
      {"base_assign", "auction",
       "training assignment solver: auction (fairseq's, with quotas) | exact (min-cost)",
       "paper §3.2 (auction); code: fairseq libbase balanced_assignment"},
      {"auction_eps_frac", "0.02", "auction bid increment eps = (max - min score) x this",
       "code: fairseq libbase (1/50)"},
      {"auction_min_eps", "1e-4", "lower bound on the auction's eps", "code: fairseq libbase"},
      {"auction_max_iters", "100", "auction rounds before the fast, suboptimal finish",
       "code: fairseq libbase"},
      {"centroid_gain", "0.1", "orthogonal initialisation gain of the expert centroids",
       "code: fairseq base_layer.py"},
  };
}

BaseOptions BaseOptionsFromKnobs(const Knobs& knobs) {
  BaseOptions o;
  const std::string& assign = knobs.GetString("base_assign");
  if (assign == "auction") {
    o.assign = BaseAssign::kAuction;
  } else if (assign == "exact") {
    o.assign = BaseAssign::kExact;
  } else {
    throw std::invalid_argument("knob base.base_assign: expected auction or exact, got '" + assign +
                                "'");
  }
  o.auction_eps_frac = knobs.GetDouble("auction_eps_frac");
  o.auction_min_eps = knobs.GetDouble("auction_min_eps");
  o.auction_max_iters = knobs.GetInt("auction_max_iters");
  o.centroid_gain = knobs.GetDouble("centroid_gain");
  if (!(o.auction_eps_frac >= 0) || !(o.auction_min_eps > 0)) {
    throw std::invalid_argument(
        "knob base.auction_eps_frac / auction_min_eps: must be >= 0 and > 0");
  }
  if (o.auction_max_iters < 0) throw std::invalid_argument("knob base.auction_max_iters: >= 0");
  return o;
}

std::vector<int64_t> BalancedQuotas(int64_t n, int64_t num_experts) {
  std::vector<int64_t> q(num_experts, n / num_experts);
  for (int64_t e = 0; e < n % num_experts; ++e) ++q[e];
  return q;
}

std::vector<int64_t> AuctionAssign(const at::Tensor& scores, const std::vector<int64_t>& quota,
                                   const BaseOptions& opt, AssignStats* stats) {
  const int64_t n = scores.size(0), ne = scores.size(1);
  CheckQuotas(quota, n, ne);
  if (stats) *stats = AssignStats{};
  for (int64_t e = 0; e < ne; ++e) {
    if (quota[e] == n) return std::vector<int64_t>(n, e);  // one expert takes every token
  }
  const std::vector<double> s = CleanScores(scores, n, ne);
  // Expert-major copies, as fairseq transposes to [workers, jobs].
  std::vector<double> score(ne * n), value(ne * n), bids(ne * n), cost(n, 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t e = 0; e < ne; ++e) score[e * n + t] = s[t * ne + e];
  }
  value = score;
  const auto [lo, hi] = std::minmax_element(score.begin(), score.end());
  const double max_value = *hi;
  const double eps = std::max((*hi - *lo) * opt.auction_eps_frac, opt.auction_min_eps);
  std::vector<int64_t> order(n), winners;  // winners: e * n + t of the last round
  std::vector<std::vector<int64_t>> top(ne);
  std::vector<double> high_bid(n);
  std::vector<int64_t> high_bidder(n);
  const int64_t cap = opt.auction_max_iters + 10000;
  bool done = false;
  int64_t counter = 0;
  for (; counter <= cap; ++counter) {
    std::fill(bids.begin(), bids.end(), 0.0);
    for (int64_t e = 0; e < ne; ++e) {
      if (quota[e] == 0) {
        top[e].clear();
        continue;
      }
      ExpertBids(&value[e * n], n, quota[e], eps, order, top[e], &bids[e * n]);
    }
    if (counter > 0 && counter < opt.auction_max_iters) {
      for (int64_t i : winners) bids[i] = eps;  // keep last round's items if nobody outbids
    }
    bool all = true;
    for (int64_t t = 0; t < n; ++t) {
      high_bid[t] = 0.0;
      high_bidder[t] = 0;
      for (int64_t e = 0; e < ne; ++e) {
        if (bids[e * n + t] > high_bid[t]) {
          high_bid[t] = bids[e * n + t];
          high_bidder[t] = e;
        }
      }
      all = all && high_bid[t] > 0;
    }
    if (all) {
      done = true;
      break;
    }
    winners.clear();
    for (int64_t t = 0; t < n; ++t) {
      cost[t] += high_bid[t];
      if (high_bid[t] > 0) winners.push_back(high_bidder[t] * n + t);
    }
    for (int64_t e = 0; e < ne; ++e) {
      for (int64_t t = 0; t < n; ++t) value[e * n + t] = score[e * n + t] - cost[t];
    }
    for (int64_t i : winners) value[i] = counter < opt.auction_max_iters ? max_value : score[i];
  }
  if (stats) stats->rounds = counter + 1;
  std::vector<int64_t> assign(n, -1);
  bool partition = done;
  for (int64_t e = 0; e < ne && partition; ++e) {
    for (int64_t t : top[e]) {
      if (assign[t] >= 0) partition = false;
      assign[t] = e;
    }
  }
  if (!partition) {
    if (stats) stats->fallback = true;
    return ExactAssign(scores, quota);
  }
  return assign;
}

std::vector<int64_t> ExactAssign(const at::Tensor& scores, const std::vector<int64_t>& quota) {
  const int64_t n = scores.size(0), ne = scores.size(1);
  CheckQuotas(quota, n, ne);
  const std::vector<double> a = CleanScores(scores, n, ne);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<int64_t> assign(n, -1), count(ne, 0), mover(ne * ne), pred(ne);
  std::vector<double> move_cost(ne * ne), dist(ne);
  for (int64_t s = 0; s < n; ++s) {
    // The cheapest move of one of e's tokens to f: a[t, e] - a[t, f] (objective lost).
    std::fill(move_cost.begin(), move_cost.end(), inf);
    for (int64_t t = 0; t < s; ++t) {
      const int64_t e = assign[t];
      for (int64_t f = 0; f < ne; ++f) {
        const double c = a[t * ne + e] - a[t * ne + f];
        if (f != e && c < move_cost[e * ne + f]) {
          move_cost[e * ne + f] = c;
          mover[e * ne + f] = t;
        }
      }
    }
    for (int64_t f = 0; f < ne; ++f) {
      dist[f] = -a[s * ne + f];
      pred[f] = -1;
    }
    for (int64_t round = 1; round < ne; ++round) {  // Bellman-Ford: no negative cycles
      bool changed = false;
      for (int64_t e = 0; e < ne; ++e) {
        for (int64_t f = 0; f < ne; ++f) {
          const double c = move_cost[e * ne + f];
          if (c < inf && dist[e] + c < dist[f] - 1e-12) {
            dist[f] = dist[e] + c;
            pred[f] = e;
            changed = true;
          }
        }
      }
      if (!changed) break;
    }
    int64_t target = -1;
    for (int64_t f = 0; f < ne; ++f) {
      if (count[f] < quota[f] && (target < 0 || dist[f] < dist[target])) target = f;
    }
    // Augment: each expert on the chain hands one token to the next; the first takes s.
    int64_t f = target;
    for (int64_t hops = 0; pred[f] >= 0; ++hops) {
      if (hops >= ne) throw std::logic_error("ExactAssign: cycle in the shortest-path tree");
      const int64_t e = pred[f];
      assign[mover[e * ne + f]] = f;
      f = e;
    }
    assign[s] = f;
    ++count[target];
  }
  return assign;
}

Routing RouteBase(const at::Tensor& affinities, const at::Tensor& pad, const RouteContext& ctx,
                  const BaseOptions& opt) {
  const int64_t t = affinities.size(0), ne = affinities.size(1);
  at::Tensor experts;  // [T, k]
  std::map<std::string, double> stats;
  if (ctx.training) {
    const HostRows rows = ReadRealRows(affinities, pad);
    const int64_t n = rows.scores.size(0);
    const std::vector<int64_t> quota = BalancedQuotas(n, ne);
    AssignStats st;
    const std::vector<int64_t> assign = opt.assign == BaseAssign::kExact
                                            ? ExactAssign(rows.scores, quota)
                                            : AuctionAssign(rows.scores, quota, opt, &st);
    at::Tensor host = at::zeros({t}, at::kLong);  // pads: expert 0, inactive
    if (n > 0) host.index_copy_(0, rows.index, at::tensor(assign, at::kLong));
    experts = OnDeviceOf(host, affinities).unsqueeze(1);
    if (opt.assign == BaseAssign::kAuction) {
      stats["base_auction_rounds"] = static_cast<double>(st.rounds);
      stats["base_fallback"] = st.fallback ? 1.0 : 0.0;
    }
  } else {
    const int64_t k = std::clamp<int64_t>(ctx.eval_k > 0 ? ctx.eval_k : 1, 1, ne);
    experts = std::get<1>(affinities.detach().topk(k, -1));
  }
  const int64_t k = experts.size(1);
  const at::Tensor weights = at::sigmoid(affinities.gather(1, experts));
  const at::Tensor active =
      ActiveMask(pad, t, affinities.device()).unsqueeze(1).expand({t, k}).contiguous();
  Routing r = AssignChoices(experts.contiguous(), weights, active, ne, 0, ctx.defer_counts);
  r.stats = std::move(stats);
  return r;
}

BaseRouter::BaseRouter(int64_t d_model, int64_t num_experts, BaseOptions opt) : opt_(opt) {
  at::Tensor c = at::empty({num_experts, d_model}, at::kFloat);
  torch::nn::init::orthogonal_(c, opt_.centroid_gain);
  centroids_ = register_parameter("centroids", c);
}

Routing BaseRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  return RouteBase(x.to(at::kFloat).matmul(centroids_.t()), pad, ctx, opt_);
}

namespace {

class BaseMethod : public Method {
 public:
  explicit BaseMethod(const Knobs& knobs) : Method(knobs), opt_(BaseOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<BaseRouter>(layer.d_model, layer.num_experts, opt_);
  }
  // The logits are the affinities x . w_e; "k" is the experts per token at inference.
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    if (req.ctx.training && req.k > 1) {
      throw std::invalid_argument(
          "\"k\": base assigns one expert per token in training (k applies at inference)");
    }
    RouteContext ctx = req.ctx;
    ctx.eval_k = req.k;
    return RouteBase(logits, pad, ctx, opt_);
  }

 private:
  BaseOptions opt_;
};

}  // namespace

std::unique_ptr<Method> MakeBaseMethod(const Knobs& knobs) {
  return std::make_unique<BaseMethod>(knobs);
}

}  // namespace moebench
