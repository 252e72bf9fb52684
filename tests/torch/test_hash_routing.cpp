// Hash layers (methods/hash.h): the properties of METHODS-MODERN.md section 11 (Hash).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <tuple>

#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "methods/hash.h"
#include "methods/routing_util.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

RouteContext Ctx(const at::Tensor& ids, bool training = true) {
  RouteContext ctx;
  ctx.training = training;
  ctx.seed = 7;
  ctx.token_ids = ids;
  ctx.total_tokens = ids.size(0);
  return ctx;
}

std::vector<int64_t> Loads(const Routing& r, int64_t e) {
  const at::Tensor c = at::bincount(r.expert, {}, e);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + e);
}

TEST(HashRouting, SameTokenIdAlwaysGoesToTheSameExpertWhateverTheHiddenState) {
  HashRouter router(4, 50, HashOptions{});
  const at::Tensor ids = at::tensor({7, 3, 7, 7, 3, 12, 49, 7}, at::kLong);
  const Routing a = router.Route(at::randn({8, 6}), at::Tensor(), Ctx(ids));
  const Routing b = router.Route(at::randn({8, 6}) * 100, at::Tensor(), Ctx(ids, false));
  ASSERT_EQ(a.token.size(0), 8);
  const at::Tensor ea = a.expert.index_select(0, at::argsort(a.token));
  EXPECT_EQ(ea[0].item<int64_t>(), ea[2].item<int64_t>());
  EXPECT_EQ(ea[0].item<int64_t>(), ea[3].item<int64_t>());
  EXPECT_EQ(ea[0].item<int64_t>(), ea[7].item<int64_t>());
  EXPECT_EQ(ea[1].item<int64_t>(), ea[4].item<int64_t>());
  // Other hidden states, evaluation mode: the same routes.
  EXPECT_TRUE(at::equal(ea, b.expert.index_select(0, at::argsort(b.token))));
  // Exactly the table's entries.
  const at::Tensor table = HashTable(50, 4, HashOptions{}, 7, false, 0);
  EXPECT_TRUE(at::equal(ea, table.index_select(0, ids)));
}

TEST(HashRouting, WeightIsExactlyOneAndThereAreNoRouterParametersNorLosses) {
  HashRouter router(4, 16, HashOptions{});
  EXPECT_TRUE(router.parameters().empty());
  const at::Tensor ids = at::arange(16, at::kLong);
  const Routing r = router.Route(at::randn({16, 6}), at::Tensor(), Ctx(ids));
  EXPECT_TRUE(at::equal(r.weight, at::ones({16}, at::kFloat)));
  EXPECT_TRUE(r.losses.empty());
  EXPECT_EQ(r.capacity, 0);
  EXPECT_EQ(r.dropped, 0);
}

TEST(HashRouting, BalancedTableGivesExactlyUniformLoadOverAUniformVocabulary) {
  // Every id of a 64-id vocabulary once: each block of 4 ids holds every expert once, so each of
  // the 4 experts gets 64 / 4 = 16 tokens, for any seed.
  for (uint64_t seed : {1, 2, 3}) {
    const at::Tensor ids = at::arange(64, at::kLong);
    RouteContext ctx = Ctx(ids);
    ctx.seed = seed;
    const Routing r = HashRouter(4, 64, HashOptions{}).Route(at::zeros({64, 2}), at::Tensor(), ctx);
    EXPECT_EQ(Loads(r, 4), (std::vector<int64_t>{16, 16, 16, 16}));
  }
  // 10 ids over 4 experts: two full blocks (2 each) and a block of 2 ids: loads are 3 or 2.
  const at::Tensor t10 = HashTable(10, 4, HashOptions{}, 5, true, 0);
  std::vector<int64_t> c(4, 0);
  for (int64_t i = 0; i < 10; ++i) ++c[t10[i].item<int64_t>()];
  std::sort(c.begin(), c.end());
  EXPECT_EQ(c, (std::vector<int64_t>{2, 2, 3, 3}));
}

TEST(HashRouting, RandomTableSharesAreWithinABinomialBound) {
  // V = 10000 ids drawn uniformly over 4 experts: each count ~ Binomial(10000, 1/4), mean 2500,
  // sd sqrt(10000 * 1/4 * 3/4) = 43.3; 5 sd = 217.
  HashOptions opt;
  opt.kind = HashKind::kRandom;
  const at::Tensor t = HashTable(10000, 4, opt, 11, false, 0);
  const at::Tensor c = at::bincount(t, {}, 4);
  for (int64_t e = 0; e < 4; ++e) EXPECT_NEAR(c[e].item<int64_t>(), 2500, 217);
  EXPECT_FALSE(at::equal(t, HashTable(10000, 4, HashOptions{}, 11, false, 0)));
}

TEST(HashRouting, AnIdsExpertDoesNotDependOnTheVocabularySize) {
  for (HashKind kind : {HashKind::kRandomBalanced, HashKind::kRandom}) {
    HashOptions opt;
    opt.kind = kind;
    const at::Tensor long_table = HashTable(100, 8, opt, 3, false, 0);
    EXPECT_TRUE(at::equal(HashTable(37, 8, opt, 3, false, 0), long_table.narrow(0, 0, 37)));
  }
}

TEST(HashRouting, TablesAreSeededBySeedAndSideAndByLayerOnlyWhenAsked) {
  const HashOptions shared;
  const at::Tensor a = HashTable(256, 4, shared, 1, false, 0);
  EXPECT_TRUE(at::equal(a, HashTable(256, 4, shared, 1, false, 0)));  // reproducible
  EXPECT_TRUE(at::equal(a, HashTable(256, 4, shared, 1, false, 3)));  // one table per side
  EXPECT_FALSE(at::equal(a, HashTable(256, 4, shared, 2, false, 0)));
  EXPECT_FALSE(at::equal(a, HashTable(256, 4, shared, 1, true, 0)));
  HashOptions per_layer;
  per_layer.seed_per_layer = true;
  EXPECT_FALSE(at::equal(HashTable(256, 4, per_layer, 1, false, 0),
                         HashTable(256, 4, per_layer, 1, false, 1)));
}

TEST(HashRouting, PadTokensGetNoAssignment) {
  const at::Tensor ids = at::tensor({4, 5, 0, 0}, at::kLong);
  const at::Tensor pad = at::tensor({1, 1, 0, 0}, at::kLong).to(at::kBool);
  const Routing r = HashRouter(2, 8, HashOptions{}).Route(at::zeros({4, 2}), pad, Ctx(ids));
  EXPECT_TRUE(at::equal(std::get<0>(at::sort(r.token)), at::tensor({0, 1}, at::kLong)));
}

TEST(HashRouting, EachWorkersGroupIsRoutedByItsOwnBlockOfTokenIds) {
  // 4 sentences of 3 tokens, 2 workers: worker 1 holds sentences 2 and 3 (ids 6..11).
  const at::Tensor ids = at::arange(12, at::kLong);
  RouteContext ctx = Ctx(ids);
  ctx.tokens_per_sentence = 3;
  ctx.topology = Topology{2, 1};
  ctx.group = 1;
  EXPECT_TRUE(at::equal(GroupTokenIds(ctx, 6), at::arange(6, 12, at::kLong)));
  // The whole input (a rank, or one worker): all ids.
  EXPECT_TRUE(at::equal(GroupTokenIds(ctx, 12), ids));
  // Through the MoE layer with 2 virtual workers: tokens per expert are the table's counts.
  LocalComm comm(Topology{2, 1});
  MoeLayer layer = testing::MakeMethodLayer("hash", &comm);
  const at::Tensor many = at::randint(40, {12}, at::kLong);
  RouteContext lctx = Ctx(many);
  lctx.tokens_per_sentence = 3;
  layer->forward(at::randn({12, 8}), at::Tensor(), lctx);
  const at::Tensor want =
      at::bincount(HashTable(40, 4, HashOptions{}, 7, false, 0).index_select(0, many), {}, 4);
  for (int64_t e = 0; e < 4; ++e) {
    EXPECT_EQ(layer->last_stats().tokens_per_expert[e], want[e].item<int64_t>()) << e;
  }
}

TEST(HashRouting, WithoutTokenIdsTheRouterSaysWhatItNeeds) {
  HashRouter router(4, 16, HashOptions{});
  try {
    router.Route(at::zeros({3, 2}), at::Tensor(), RouteContext{});
    FAIL() << "routed without token ids";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("token ids"), std::string::npos) << e.what();
  }
  const std::unique_ptr<Method> m = MakeMethod("hash", {});
  LogitsRequest req;
  EXPECT_THROW(m->RouteLogits(at::zeros({2, 2}), at::Tensor(), req), std::invalid_argument);
  req.ctx.token_ids = at::tensor({0, 1, 2, 3}, at::kLong);
  req.ctx.seed = 7;
  const Routing r = m->RouteLogits(at::zeros({4, 2}), at::Tensor(), req);
  EXPECT_EQ(Loads(r, 2), (std::vector<int64_t>{2, 2}));  // ids 0..3: two blocks of 2
}

TEST(HashRouting, FrequencyBalancedKindIsRefusedWithAReason) {
  try {
    MakeMethod("hash", {{"hash_kind", "balanced"}});
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("frequencies"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MakeMethod("hash", {{"hash_kind", "bigram"}}), std::invalid_argument);
}

}  // namespace
}  // namespace moebench
