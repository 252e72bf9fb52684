// Generic top-k token choice and aux-loss-free balancing: METHODS-MODERN.md section 11, with
// every expected value computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "harness/comm/comm_meter.h"
#include "harness/moe/exchange_plan.h"
#include "methods/aux_free.h"
#include "methods/capacity.h"
#include "methods/topk.h"

namespace moebench {
namespace {

RouteContext Train() {
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 3;
  return ctx;
}

// Logits whose sigmoid is p.
at::Tensor Logit(const std::vector<float>& p, int64_t rows = 1) {
  const at::Tensor s = at::tensor(p);
  return at::log(s / (1 - s)).view({rows, -1});
}

TopkOptions Sigmoid(int64_t k) {
  TopkOptions o;
  o.k = k;
  o.score_func = ScoreFunc::kSigmoid;
  return o;
}

std::vector<int64_t> Ints(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<float> Floats(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void ExpectNear(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "entry " << i;
}

// ---- capacity (DeepSpeed _capacity with capacity_factor * k) ------------------------------

TEST(Topk, CapacityIsDeepSpeedsForAnyK) {
  EXPECT_EQ(TopkCapacity(1.0, 2, 8, 4, 0), 4);    // ceil(2 * 1.0 * 8 / 4)
  EXPECT_EQ(TopkCapacity(1.0, 1, 10, 4, 0), 3);   // ceil(2.5)
  EXPECT_EQ(TopkCapacity(1.25, 1, 10, 4, 4), 4);  // max(4, ceil(3.125))
  EXPECT_EQ(TopkCapacity(1.5, 2, 10, 4, 0), 8);   // ceil(7.5)
  EXPECT_EQ(TopkCapacity(1.0, 3, 12, 6, 0), 6);   // exactly 6, not 7
  EXPECT_EQ(TopkCapacity(1.0, 2, 8, 4, 0), Top2Capacity(1.0, 8, 4, 0));
  TopkOptions o;
  o.dropless = true;
  EXPECT_EQ(TopkGroupCapacity(o, 2, 100, 4, true, false), 0);  // dropless: no capacity
  o.dropless = false;
  EXPECT_EQ(TopkGroupCapacity(o, 2, 100, 4, true, false), 50);
  EXPECT_EQ(TopkGroupCapacity(o, 2, 100, 4, false, false), 0);  // eval cf 0: never drop
  EXPECT_EQ(TopkGroupCapacity(o, 2, 100, 4, true, true), 50);
  EXPECT_EQ(TopkGroupCapacity(o, 2, 100, 4, false, true), 0);  // incremental decoding
}

// ---- keep rules ----------------------------------------------------------------------------

TEST(Topk, K1KeepsTheHighestProbabilityOrTheEarliestToken) {
  // p(t0) = softmax(1, 0) -> e0 at 0.7311; p(t1) = softmax(3, 0) -> e0 at 0.9526;
  // t2 -> e1 at softmax(0, 2) = 0.8808; t3 -> e1 at 0.7311. Capacity 1 per expert.
  const at::Tensor logits = at::tensor({1.f, 0.f, 3.f, 0.f, 0.f, 2.f, 0.f, 1.f}).view({4, 2});
  TopkOptions o;
  o.k = 1;
  Routing r = RouteTopk(logits, at::Tensor(), 1, 1, o, Train());
  EXPECT_EQ(Ints(r.token), (std::vector<int64_t>{1, 2}));  // probs: t1 beats the earlier t0
  EXPECT_EQ(Ints(r.expert), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(Ints(r.slot), (std::vector<int64_t>{0, 0}));
  ExpectNear(Floats(r.weight), {1 / (1 + std::exp(-3.0)), 1 / (1 + std::exp(-2.0))}, 1e-6);
  EXPECT_EQ(Ints(r.dropped_token), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(r.dropped, 2);
  o.drop_policy = DropPolicy::kPosition;
  Routing p = RouteTopk(logits, at::Tensor(), 1, 1, o, Train());
  EXPECT_EQ(Ints(p.token), (std::vector<int64_t>{0, 2}));  // the earliest token keeps the slot
  ExpectNear(Floats(p.weight), {1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(-2.0))}, 1e-6);
}

TEST(Topk, K2ChoicesCompeteAlikeUnlikeGShard) {
  // t0: p = (0.35, 0.40, 0.25): first e1, second e0. t1: p = (0.50, 0.45, 0.05): first e0,
  // second e1. Capacity 1. GShard would give e1 to t0 and e0 to t1 (first choices first).
  const at::Tensor logits =
      at::log(at::tensor({0.35f, 0.40f, 0.25f, 0.50f, 0.45f, 0.05f})).view({2, 3});
  TopkOptions o;  // softmax, k = 2, route_norm auto = kept
  Routing r = RouteTopk(logits, at::Tensor(), 1, 2, o, Train());
  // probs: t1's scores are higher on both experts, its second choice included.
  EXPECT_EQ(Ints(r.token), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(Ints(r.expert), (std::vector<int64_t>{0, 1}));
  ExpectNear(Floats(r.weight), {0.50 / 0.95, 0.45 / 0.95}, 1e-6);
  EXPECT_EQ(r.dropped, 2);
  EXPECT_EQ(Ints(r.dropped_token), (std::vector<int64_t>{0, 0}));
  o.drop_policy = DropPolicy::kPosition;  // token order: t0 keeps both
  Routing p = RouteTopk(logits, at::Tensor(), 1, 2, o, Train());
  EXPECT_EQ(Ints(p.token), (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(Ints(p.expert), (std::vector<int64_t>{1, 0}));
  ExpectNear(Floats(p.weight), {0.40 / 0.75, 0.35 / 0.75}, 1e-6);
  // A lone surviving choice gets weight 1 (route_norm kept, DeepSpeed). t0: p = (0.6, 0.3,
  // 0.1): e0, e1; t1: p = (0.1, 0.4, 0.5): e2, e1. Capacity 1: e1 keeps t1 (0.4 > 0.3).
  const at::Tensor l2 = at::log(at::tensor({0.6f, 0.3f, 0.1f, 0.1f, 0.4f, 0.5f})).view({2, 3});
  Routing q = RouteTopk(l2, at::Tensor(), 1, 2, TopkOptions{}, Train());
  EXPECT_EQ(Ints(q.token), (std::vector<int64_t>{0, 1, 1}));  // choice-major: firsts, seconds
  EXPECT_EQ(Ints(q.expert), (std::vector<int64_t>{0, 2, 1}));
  ExpectNear(Floats(q.weight), {1.0, 0.5 / 0.9, 0.4 / 0.9}, 1e-6);
}

TEST(Topk, DroplessKeepsEveryChoiceWithRowsAsCounted) {
  at::manual_seed(5);
  const int64_t t = 40, e = 6, k = 2;
  const at::Tensor logits = at::randn({t, e});
  at::Tensor pad = at::ones({t}, at::kBool);
  pad.narrow(0, 30, 10).fill_(false);
  TopkOptions o;
  o.k = k;
  o.dropless = true;
  const int64_t capacity = TopkGroupCapacity(o, k, 30, e, true, false);
  ASSERT_EQ(capacity, 0);
  at::Tensor demand;
  Routing r = RouteTopk(logits, pad, capacity, k, o, Train(), {}, &demand);
  EXPECT_EQ(r.dropped, 0);
  EXPECT_EQ(r.token.size(0), 30 * k);  // sum_e c_e = n * k
  EXPECT_EQ(r.capacity, 0);
  // Every real token has exactly k assignments, pads none.
  const std::vector<int64_t> per_token = Ints(at::bincount(r.token, {}, t));
  for (int64_t i = 0; i < t; ++i) EXPECT_EQ(per_token[i], i < 30 ? k : 0) << "token " << i;
  // Rows per expert = the histogram of the real tokens' top-k.
  const at::Tensor top = std::get<1>(logits.narrow(0, 0, 30).topk(k, -1));
  EXPECT_EQ(Ints(at::bincount(r.expert, {}, e)), Ints(at::bincount(top.reshape({-1}), {}, e)));
  EXPECT_EQ(Ints(demand), Ints(at::bincount(top.reshape({-1}), {}, e)));
  // Slots number each expert's rows 0, 1, 2, ...
  for (int64_t j = 0; j < e; ++j) {
    const at::Tensor s = std::get<0>(r.slot.masked_select(r.expert == j).sort());
    EXPECT_TRUE(at::equal(s, at::arange(s.size(0), at::kLong))) << "expert " << j;
  }
}

TEST(Topk, DroplessBytesCompactAndPadded) {
  // W = 2, E_loc = 2, d = 8 fp32 (32-byte rows). Worker 0 routes 4 tokens (k = 1) to experts
  // [0, 2, 2, 3]; worker 1 routes [0, 1, 3]. No fixed capacity: padded buffers hold the most
  // rows any expert of the source got (worker 0: 2).
  SplitSizes s;
  s.workers = 2;
  s.experts = 4;
  s.rows = {1, 0, 2, 1, 1, 1, 0, 1};
  s.capacity = {2, 1};
  const ExchangePlan compact = MakeExchangePlan(s, 0, 32, ExchangeFormat::kCompact, true, -1);
  EXPECT_EQ(compact.forward.rows, (std::vector<int64_t>{1, 3, 2, 1}));
  EXPECT_EQ(compact.forward.rows[1] * 32, 96);           // logical bytes 0 -> 1
  EXPECT_EQ(compact.forward.wire_bytes[1], 96 + 8);      // + one int64 count per pair
  EXPECT_EQ(compact.forward.wire_bytes[2], 2 * 32 + 8);  // worker 1 -> 0
  const ExchangePlan padded = MakeExchangePlan(s, 0, 32, ExchangeFormat::kPadded, true, -1);
  EXPECT_EQ(padded.forward.wire_bytes[1], 1 * 2 * 2 * 8 * 4);  // 128
  EXPECT_EQ(padded.forward.wire_bytes[2], 2 * 1 * 32);         // E_loc * C(1) * row
}

// ---- scores and gate normalisation ---------------------------------------------------------

TEST(Topk, SoftmaxPostTopkEqualsRenormalisedPreTopk) {
  const at::Tensor logits = at::tensor({2.f, 1.f, 0.f}).view({1, 3});
  TopkOptions o;  // softmax, k 2: auto = kept; nothing dropped, so kept = selected
  Routing r = RouteTopk(logits, at::Tensor(), 0, 2, o, Train());
  ExpectNear(Floats(r.weight), {0.731059, 0.268941}, 1e-6);
  o.route_norm = RouteNorm::kNone;
  Routing n = RouteTopk(logits, at::Tensor(), 0, 2, o, Train());
  ExpectNear(Floats(n.weight), {0.665241, 0.244728}, 1e-6);  // sums to 0.909969
}

TEST(Topk, SigmoidRenormalisationAndScale) {
  // s = (0.9, 0.6, 0.1, 0.2), k = 2: experts 0 and 1, weights 0.9/1.5 and 0.6/1.5.
  const at::Tensor logits = Logit({0.9f, 0.6f, 0.1f, 0.2f});
  Routing r = RouteTopk(logits, at::Tensor(), 0, 2, Sigmoid(2), Train());
  EXPECT_EQ(Ints(r.expert), (std::vector<int64_t>{0, 1}));
  ExpectNear(Floats(r.weight), {0.6, 0.4}, 1e-6);
  TopkOptions scaled = Sigmoid(2);
  scaled.route_scale = 2.5;
  Routing s = RouteTopk(logits, at::Tensor(), 0, 2, scaled, Train());
  EXPECT_NEAR(s.weight.sum().item<float>(), 2.5, 1e-6);
  // k = 1: no renormalisation; the weight is sigma(h), 0.5 at h = 0.
  Routing one = RouteTopk(at::zeros({1, 4}), at::Tensor(), 0, 1, Sigmoid(1), Train());
  EXPECT_FLOAT_EQ(one.weight[0].item<float>(), 0.5f);
  // Probabilities for metrics and the aux loss: s normalised over the experts.
  ExpectNear(Floats(r.probs), {0.9 / 1.8, 0.6 / 1.8, 0.1 / 1.8, 0.2 / 1.8}, 1e-6);
}

TEST(Topk, AuxLossIsOneUnderUniformRouting) {
  // 4 tokens, 4 experts, k = 2, equal logits: p = 1/4 everywhere; f depends on topk's tie
  // order, but sum_e p_e * f_e = 1/4 * sum_e f_e = 1/4 * k, times E / k = 1.
  Routing r = RouteTopk(at::zeros({4, 4}), at::Tensor(), 0, 2, TopkOptions{}, Train());
  ASSERT_EQ(r.losses[0].name, "aux");
  EXPECT_NEAR(r.losses[0].value.item<float>(), 1.0, 1e-6);
}

// ---- node-limited selection ----------------------------------------------------------------

TEST(Topk, NodeLimitedSelection) {
  // E = 8 in G = 4 groups of 2, k = 4, M = 2 (METHODS-MODERN.md section 11).
  const at::Tensor s = at::tensor({0.9f, 0.1f, 0.6f, 0.5f, 0.8f, 0.0f, 0.3f, 0.2f}).view({1, 8});
  TopkOptions o;
  o.node_limit_topk = 2;
  o.node_limit_groups = 4;
  Topology topo;
  auto set = [&](const at::Tensor& idx) {
    const std::vector<int64_t> v = Ints(idx);
    return std::set<int64_t>(v.begin(), v.end());
  };
  // sum_topk, r = k / M = 2: group scores (1.0, 1.1, 0.8, 0.5): groups 0 and 1.
  EXPECT_EQ(set(SelectExperts(s, {}, 4, o, topo)), (std::set<int64_t>{0, 1, 2, 3}));
  o.node_score = NodeScore::kMax;  // (0.9, 0.6, 0.8, 0.3): groups 0 and 2
  EXPECT_EQ(set(SelectExperts(s, {}, 4, o, topo)), (std::set<int64_t>{0, 1, 4, 5}));
  o.node_limit_topk = 0;  // unrestricted: 3 groups
  EXPECT_EQ(set(SelectExperts(s, {}, 4, o, topo)), (std::set<int64_t>{0, 4, 2, 3}));
  // A bias moves the groups: +1 on expert 6 makes group 3 (1.3 + 0.2) the best.
  o.node_limit_topk = 2;
  o.node_score = NodeScore::kSumTopk;
  const at::Tensor b = at::tensor({0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 1.f, 0.f});
  EXPECT_EQ(set(SelectExperts(s, b, 4, o, topo)), (std::set<int64_t>{6, 7, 2, 3}));
  // A uniform shift of the bias changes nothing.
  EXPECT_EQ(set(SelectExperts(s, b + 0.37f, 4, o, topo)), (std::set<int64_t>{6, 7, 2, 3}));
  // Weights from s over the chosen set: (0.9, 0.6, 0.5, 0.1) / 2.1 (no bias).
  TopkOptions sig = Sigmoid(4);
  sig.node_limit_topk = 2;
  sig.node_limit_groups = 4;
  const at::Tensor logits = Logit({0.9f, 0.1f, 0.6f, 0.5f, 0.8f, 0.05f, 0.3f, 0.2f});
  Routing r = RouteTopk(logits, at::Tensor(), 0, 4, sig, Train());
  EXPECT_EQ(Ints(r.expert), (std::vector<int64_t>{0, 2, 3, 1}));
  ExpectNear(Floats(r.weight), {0.9 / 2.1, 0.6 / 2.1, 0.5 / 2.1, 0.1 / 2.1}, 1e-6);
  // M = G is the unrestricted top-k, bit for bit.
  sig.node_limit_topk = 4;
  TopkOptions free = Sigmoid(4);
  Routing a = RouteTopk(logits, at::Tensor(), 0, 4, sig, Train());
  Routing u = RouteTopk(logits, at::Tensor(), 0, 4, free, Train());
  EXPECT_TRUE(at::equal(a.expert, u.expert));
  EXPECT_TRUE(at::equal(a.weight, u.weight));
  // Bad settings name the knobs.
  o.node_limit_topk = 3;
  EXPECT_THROW(SelectExperts(s, {}, 4, o, topo), std::invalid_argument);  // 3 does not divide 4
}

TEST(Topk, NodeLimitNeverReachesMoreThanMNodes) {
  at::manual_seed(11);
  const at::Tensor logits = at::randn({200, 16});
  TopkOptions o = Sigmoid(4);
  o.node_limit_topk = 2;  // groups: the topology's 4 nodes of 4 experts
  RouteContext ctx = Train();
  ctx.topology = Topology{8, 2};  // 8 workers, 2 per node: 4 nodes, experts 4n..4n+3 on node n
  Routing r = RouteTopk(logits, at::Tensor(), 0, 4, o, ctx);
  const at::Tensor node = at::div(r.expert, 4, "floor");
  const at::Tensor seen =
      at::zeros({200, 4}, at::kLong).index_put_({r.token, node}, at::ones_like(node));
  EXPECT_LE(seen.sum(1).max().item<int64_t>(), 2);
  EXPECT_EQ(r.token.size(0), 800);
  o.node_limit_topk = 0;
  Routing u = RouteTopk(logits, at::Tensor(), 0, 4, o, ctx);
  const at::Tensor un = at::div(u.expert, 4, "floor");
  const at::Tensor useen =
      at::zeros({200, 4}, at::kLong).index_put_({u.token, un}, at::ones_like(un));
  EXPECT_GT(useen.sum(1).max().item<int64_t>(), 2);  // the limit is not vacuous here
}

TEST(Topk, NodeLimitedBytesByClass) {
  // W = 4 workers in 2 nodes of 2, E = 8 (2 per worker; node 0 = experts 0-3), k = 2, sigmoid,
  // 32-byte rows. Worker 0 routes two tokens:
  //  t0 logits (4, -1, -2, -3, -3.5, 3, -2.5, -1.5): unrestricted experts 0 and 5;
  //     node scores sigma(4) + sigma(-1) = 1.2510 > sigma(3) + sigma(-1.5) = 1.1350: node 0,
  //     experts 0 and 1.
  //  t1 logits (-1.5, -2.5, 4, 3.5, -1, -2, 5, -3): unrestricted experts 6 and 2;
  //     node 0 scores sigma(4) + sigma(3.5) = 1.9527 > sigma(5) + sigma(-1) = 1.2623: experts 2, 3.
  const at::Tensor logits = at::tensor({4.f, -1.f, -2.f, -3.f, -3.5f, 3.f, -2.5f, -1.5f,  //
                                        -1.5f, -2.5f, 4.f, 3.5f, -1.f, -2.f, 5.f, -3.f})
                                .view({2, 8});
  const Topology topo{4, 2};
  RouteContext ctx = Train();
  ctx.topology = topo;
  auto bytes_by_class = [&](const TopkOptions& o) {
    Routing r = RouteTopk(logits, at::Tensor(), 0, 2, o, ctx);
    SplitSizes s;
    s.workers = 4;
    s.experts = 8;
    s.rows.assign(32, 0);
    for (int64_t e : Ints(r.expert)) s.rows[e] += 1;  // group 0's rows; the others send none
    s.capacity = {2, 0, 0, 0};
    const ExchangePlan plan = MakeExchangePlan(s, 0, 32, ExchangeFormat::kCompact, true, -1);
    CommMeter meter;
    // Group 0's row only (as a rank counts what it sends): the others send no rows.
    meter.Record(0, "fwd", topo, plan.forward.rows, 32, plan.forward.wire_bytes, 1, 0.0, 0);
    const CommCounters c = meter.Drain().at({0, "fwd"});
    return std::vector<int64_t>{c.logical[0], c.logical[1], c.logical[2], c.wire[2]};
  };
  TopkOptions o = Sigmoid(2);
  // Unrestricted: t0 -> e0 (same worker), e5 (worker 2, other node); t1 -> e6 (worker 3,
  // other node), e2 (worker 1, same node). Wire: 32 + 8 to each of workers 2 and 3.
  EXPECT_EQ(bytes_by_class(o), (std::vector<int64_t>{32, 32, 64, 80}));
  o.node_limit_topk = 1;  // G = the topology's 2 nodes
  // t0 -> e0, e1 (same worker); t1 -> e2, e3 (worker 1, same node); nothing leaves the node.
  // Compact wire still sends a count to every other worker: 8 bytes to each of workers 2, 3.
  EXPECT_EQ(bytes_by_class(o), (std::vector<int64_t>{64, 64, 0, 16}));
}

// ---- aux-loss-free balancing ---------------------------------------------------------------

TEST(AuxFree, SelectionUsesTheBiasAndWeightsDoNot) {
  const at::Tensor logits = Logit({0.9f, 0.6f, 0.1f, 0.2f});
  const at::Tensor b = at::tensor({-1.f, 0.f, 0.f, 0.f});
  Routing r = RouteTopk(logits, at::Tensor(), 0, 2, Sigmoid(2), Train(), b);
  EXPECT_EQ(Ints(r.expert), (std::vector<int64_t>{1, 3}));
  ExpectNear(Floats(r.weight), {0.75, 0.25}, 1e-6);  // 0.6 / 0.8, 0.2 / 0.8: unbiased s
  TopkOptions scaled = Sigmoid(2);
  scaled.route_scale = 2.5;
  ExpectNear(Floats(RouteTopk(logits, at::Tensor(), 0, 2, scaled, Train(), b).weight),
             {1.875, 0.625}, 1e-6);
  Routing z = RouteTopk(logits, at::Tensor(), 0, 2, Sigmoid(2), Train(), at::zeros({4}));
  EXPECT_EQ(Ints(z.expert), (std::vector<int64_t>{0, 1}));
  ExpectNear(Floats(z.weight), {0.6, 0.4}, 1e-6);
}

TEST(AuxFree, BiasUpdateRules) {
  const double u = 1e-3;
  auto upd = [&](std::vector<int64_t> c, BiasRule rule, bool center) {
    return Floats(BiasUpdate(at::tensor(c), u, rule, center));
  };
  ExpectNear(upd({9, 1, 1, 1}, BiasRule::kSign, false), {-1e-3, 1e-3, 1e-3, 1e-3}, 1e-9);
  ExpectNear(upd({9, 1, 1, 1}, BiasRule::kSign, true), {-1.5e-3, 5e-4, 5e-4, 5e-4}, 1e-9);
  ExpectNear(upd({5, 3, 3, 1}, BiasRule::kSign, false), {-1e-3, 0, 0, 1e-3}, 1e-9);
  ExpectNear(upd({3, 3, 3, 3}, BiasRule::kSign, false), {0, 0, 0, 0}, 0);
  ExpectNear(upd({9, 1, 1, 1}, BiasRule::kProportional, false), {-6e-3, 2e-3, 2e-3, 2e-3}, 1e-9);
  EXPECT_NEAR(at::tensor(upd({9, 1, 1, 1}, BiasRule::kSign, true)).sum().item<float>(), 0, 1e-9);
}

// An aux_free router on d = E = 4 whose router weight is the identity: logits = x.
std::shared_ptr<AuxFreeRouter> IdentityRouter(AuxFreeOptions opt) {
  auto router = std::make_shared<AuxFreeRouter>(4, 4, opt);
  at::NoGradGuard no_grad;
  router->named_parameters()["weight"].copy_(at::eye(4));
  return router;
}

TEST(AuxFree, BiasMovesAfterAStepWithTheStepsGlobalLoad) {
  AuxFreeOptions opt;
  opt.topk = Sigmoid(1);
  opt.topk.dropless = true;
  auto router = IdentityRouter(opt);
  // Group 0: three tokens prefer expert 0, one expert 1; group 1 (another virtual worker of the
  // same step): tokens to experts 0, 0, 2, 3. Demand: (5, 1, 1, 1).
  const at::Tensor g0 =
      at::tensor({3.f, 0.f, 0.f, 0.f, 3.f, 0.f, 0.f, 0.f, 3.f, 0.f, 0.f, 0.f, 0.f, 3.f, 0.f, 0.f})
          .view({4, 4});
  const at::Tensor g1 =
      at::tensor({3.f, 0.f, 0.f, 0.f, 3.f, 0.f, 0.f, 0.f, 0.f, 0.f, 3.f, 0.f, 0.f, 0.f, 0.f, 3.f})
          .view({4, 4});
  RouteContext ctx = Train();
  router->Route(g0, at::Tensor(), ctx);
  ctx.group = 1;
  router->Route(g1, at::Tensor(), ctx);
  // Evaluation and no-grad forwards count nothing.
  RouteContext eval;
  router->Route(g0, at::Tensor(), eval);
  {
    at::NoGradGuard no_grad;
    router->Route(g0, at::Tensor(), Train());
  }
  const at::Tensor counts = router->StepCounts();
  EXPECT_EQ(Ints(counts), (std::vector<int64_t>{5, 1, 1, 1}));
  // Nothing moves before the step ends.
  EXPECT_TRUE(at::equal(router->bias(), at::zeros({4})));
  router->AfterStep(counts, 1, 100);
  ExpectNear(Floats(router->bias()), {-1e-3, 1e-3, 1e-3, 1e-3}, 1e-9);
  EXPECT_EQ(Ints(router->StepCounts()), (std::vector<int64_t>{0, 0, 0, 0}));  // reset
  // The bias is a buffer (saved with the model), not a parameter.
  EXPECT_EQ(router->named_buffers().size(), 1u);
  EXPECT_TRUE(router->named_buffers().contains("bias"));
  EXPECT_EQ(router->named_parameters().size(), 1u);
  EXPECT_FALSE(router->bias().requires_grad());
  // bias_freeze_frac 0.1 of 100 steps: updates after steps 1..90, none after 91..100.
  AuxFreeOptions frozen = opt;
  frozen.freeze_frac = 0.1;
  auto f = IdentityRouter(frozen);
  f->AfterStep(counts, 90, 100);
  ExpectNear(Floats(f->bias()), {-1e-3, 1e-3, 1e-3, 1e-3}, 1e-9);
  f->AfterStep(counts, 91, 100);
  ExpectNear(Floats(f->bias()), {-1e-3, 1e-3, 1e-3, 1e-3}, 1e-9);
}

TEST(AuxFree, BiasedRouterSelectsWithItsBias) {
  AuxFreeOptions opt;
  opt.topk = Sigmoid(2);
  auto router = IdentityRouter(opt);
  const at::Tensor x = Logit({0.9f, 0.6f, 0.1f, 0.2f});
  router->AfterStep(at::tensor({1000, 0, 0, 0}), 1, 0);  // b = (-1e-3, 1e-3, 1e-3, 1e-3)
  Routing r0 = router->Route(x, at::Tensor(), Train());
  EXPECT_EQ(Ints(r0.expert), (std::vector<int64_t>{0, 1}));  // 0.899 still beats 0.601
  for (int i = 0; i < 999; ++i) router->AfterStep(at::tensor({1000, 0, 0, 0}), 1, 0);
  // b = (-1, 1, 1, 1) (to fp32 rounding): s + b = (-0.1, 1.6, 1.1, 1.2): experts 1 and 3.
  Routing r = router->Route(x, at::Tensor(), Train());
  EXPECT_EQ(Ints(r.expert), (std::vector<int64_t>{1, 3}));
  ExpectNear(Floats(r.weight), {0.75, 0.25}, 1e-6);
}

TEST(AuxFree, SequenceBalanceLoss) {
  // 4 tokens, 4 experts, k = 1, one token each: f uniform (1 each), loss = sum P = 1.
  const at::Tensor p = at::tensor({0.7f, 0.1f, 0.1f, 0.1f, 0.1f, 0.7f, 0.1f, 0.1f,  //
                                   0.1f, 0.1f, 0.7f, 0.1f, 0.1f, 0.1f, 0.1f, 0.7f})
                           .view({4, 4});
  EXPECT_NEAR(SequenceBalanceLoss(p, at::Tensor(), 1, 0).item<float>(), 1.0, 1e-6);
  // All scores equal: P = 1/4 each, sum f = E: loss 1 whatever the tie order.
  EXPECT_NEAR(SequenceBalanceLoss(at::full({4, 4}, 0.25f), at::Tensor(), 1, 0).item<float>(), 1.0,
              1e-6);
  // Every token of a sequence on expert 0 with P_0 = 1: f_0 = E / k = 4, loss 4 = E / k (max).
  const at::Tensor one = at::tensor({1.f, 0.f, 0.f, 0.f}).repeat({4, 1});
  EXPECT_NEAR(SequenceBalanceLoss(one, at::Tensor(), 1, 0).item<float>(), 4.0, 1e-6);
  // Two sequences of 2 tokens: the first balanced over experts 0, 1 (f = (2, 2, 0, 0),
  // P = (0.4, 0.4, 0.1, 0.1): 1.6), the second all on expert 0 (f = (4, 0, 0, 0), P_0 = 0.7:
  // 2.8); mean 2.2. A pad token is not counted: with the last token a pad the second sequence
  // is its first token alone, with the same f and P: still 2.2.
  const at::Tensor q = at::tensor({0.7f, 0.1f, 0.1f, 0.1f, 0.1f, 0.7f, 0.1f, 0.1f,  //
                                   0.7f, 0.1f, 0.1f, 0.1f, 0.7f, 0.1f, 0.1f, 0.1f})
                           .view({4, 4});
  const double want = (2 * 0.4 + 2 * 0.4 + 4 * 0.7) / 2;
  EXPECT_NEAR(SequenceBalanceLoss(q, at::Tensor(), 1, 2).item<float>(), want, 1e-6);
  const at::Tensor pad = at::tensor({1, 1, 1, 0}).to(at::kBool);
  EXPECT_NEAR(SequenceBalanceLoss(q, pad, 1, 2).item<float>(), want, 1e-6);
}

}  // namespace
}  // namespace moebench
