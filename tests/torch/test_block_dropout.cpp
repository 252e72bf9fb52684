// Note [Dropout masks]: the masks of a worker block do not depend on which process draws them.
#include <gtest/gtest.h>

#include <cmath>

#include "harness/model/block_dropout.h"

namespace moebench {
namespace {

RouteContext Ctx(int64_t step, int pass) {
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 7;
  ctx.step = step;
  ctx.pass = pass;
  return ctx;
}

// 5 sentences of 3 positions of width 4, all ones: the output is the mask itself.
at::Tensor Ones() { return at::ones({5, 3, 4}); }

TEST(BlockDropout, RanksDrawTheMasksOfOneProcessForTheirBlocks) {
  const RouteContext ctx = Ctx(4, 0);
  const at::Tensor all = BlockDropout(Ones(), 0.5, ctx, 3, {0, 2, 2});
  // Block w is rows [5w/2, 5(w+1)/2): rows 0-1 for rank 0, rows 2-4 for rank 1.
  const at::Tensor rank0 = BlockDropout(Ones().narrow(0, 0, 2), 0.5, ctx, 3, {0, 1, 2});
  const at::Tensor rank1 = BlockDropout(Ones().narrow(0, 2, 3), 0.5, ctx, 3, {1, 1, 2});
  EXPECT_TRUE(at::equal(all.narrow(0, 0, 2), rank0));
  EXPECT_TRUE(at::equal(all.narrow(0, 2, 3), rank1));
  // Kept elements are scaled by 1 / (1 - p) = 2, dropped ones are 0.
  EXPECT_TRUE(at::logical_or(all.eq(0), all.eq(2)).all().item<bool>());
}

TEST(BlockDropout, EachStepSitePassAndBlockDrawsItsOwnMask) {
  const at::Tensor x = at::ones({2, 50, 4});  // 200 elements per block: equal masks by chance
                                              // have probability 2^-200
  const at::Tensor base = BlockDropout(x, 0.5, Ctx(4, 0), 3, {0, 1, 2});
  EXPECT_TRUE(at::equal(base, BlockDropout(x, 0.5, Ctx(4, 0), 3, {0, 1, 2})));
  EXPECT_FALSE(at::equal(base, BlockDropout(x, 0.5, Ctx(5, 0), 3, {0, 1, 2})));  // step
  EXPECT_FALSE(at::equal(base, BlockDropout(x, 0.5, Ctx(4, 1), 3, {0, 1, 2})));  // pass
  EXPECT_FALSE(at::equal(base, BlockDropout(x, 0.5, Ctx(4, 0), 4, {0, 1, 2})));  // site
  EXPECT_FALSE(at::equal(base, BlockDropout(x, 0.5, Ctx(4, 0), 3, {1, 1, 2})));  // block
}

TEST(BlockDropout, KeepsOneMinusPOfTheElements) {
  // 200000 elements kept w.p. 0.9: the kept fraction's standard deviation is
  // sqrt(0.9 * 0.1 / 200000) = 6.7e-4; 0.005 is over 7 of them.
  const at::Tensor y = BlockDropout(at::ones({4, 500, 100}), 0.1, Ctx(1, 0), 0, {0, 4, 4});
  const double kept = y.ne(0).to(at::kDouble).mean().item<double>();
  EXPECT_NEAR(kept, 0.9, 0.005);
  EXPECT_NEAR(y.max().item<double>(), 1.0 / 0.9, 1e-6);
}

TEST(BlockDropout, ZeroPIsTheIdentity) {
  const at::Tensor x = at::randn({3, 2, 4});
  EXPECT_TRUE(BlockDropout(x, 0.0, Ctx(1, 0), 0, {0, 3, 3}).is_same(x));
}

TEST(BlockDropout, GradientFlowsThroughTheKeptElements) {
  const at::Tensor x = at::ones({2, 8, 4}).requires_grad_();
  const at::Tensor y = BlockDropout(x, 0.5, Ctx(2, 0), 1, {0, 2, 2});
  y.sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), y.detach()));  // d(sum(x * m))/dx = m
}

}  // namespace
}  // namespace moebench
