// The MoE layer's fast-path pieces: GatherRows / CombineRows (hand-computed values and
// gradients), the grouped experts' custom backward (against per-expert autograd, serial and
// parallel), and the one-worker layer path against the einsum oracle.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "harness/comm/local_comm.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/experts.h"
#include "harness/moe/moe_layer.h"
#include "harness/torch_compat.h"
#include "methods/switch.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

using testing::AllClose;

TEST(MoeKernels, GatherRowsBackwardSumsDuplicateIndices) {
  at::Tensor x = at::zeros({3, 2}).requires_grad_(true);
  at::Tensor rows = GatherRows(x, at::tensor({2, 0, 2}, at::kLong));
  rows.backward(at::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).view({3, 2}));
  // Row 0 receives gradient row 1; row 2 receives rows 0 and 2 summed; row 1 nothing.
  EXPECT_TRUE(AllClose(x.grad(), at::tensor({3.f, 4.f, 0.f, 0.f, 6.f, 8.f}).view({3, 2})));
}

TEST(MoeKernels, CombineRowsWeightsScattersAndDifferentiates) {
  at::Tensor rows = at::tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}).view({3, 2}).requires_grad_(true);
  at::Tensor weight = at::tensor({0.5f, 2.f, 1.f}).requires_grad_(true);
  at::Tensor y = CombineRows(rows, at::tensor({1, 1, 0}, at::kLong), weight, 3);
  // y[0] = 1 * (5, 6); y[1] = 0.5 * (1, 2) + 2 * (3, 4) = (6.5, 9); y[2] has no assignment.
  EXPECT_TRUE(AllClose(y, at::tensor({5.f, 6.f, 6.5f, 9.f, 0.f, 0.f}).view({3, 2})));
  y.backward(at::tensor({1.f, 1.f, 1.f, 0.f, 0.f, 0.f}).view({3, 2}));
  // d rows[a] = weight[a] * gy[token[a]]; d weight[a] = <gy[token[a]], rows[a]>.
  EXPECT_TRUE(AllClose(rows.grad(), at::tensor({0.5f, 0.f, 2.f, 0.f, 1.f, 1.f}).view({3, 2})));
  EXPECT_TRUE(AllClose(weight.grad(), at::tensor({1.f, 3.f, 11.f})));
}

// Reference: each expert through ForwardOne with plain autograd.
struct GroupedResult {
  at::Tensor y, gx, gw1, gb1, gw2, gb2;
};

enum class Form { kReference, kGrouped, kGroupedMm };

GroupedResult RunGrouped(Experts& experts, const at::Tensor& x0, const at::Tensor& gy,
                         const std::vector<int64_t>& counts, Form form) {
  const bool reference = form == Form::kReference;
  for (auto& p : experts.parameters()) p.mutable_grad() = at::Tensor();
  at::Tensor x = x0.clone().requires_grad_(true);
  at::Tensor y;
  if (reference) {
    std::vector<at::Tensor> outs;
    int64_t offset = 0;
    for (int64_t e = 0; e < static_cast<int64_t>(counts.size()); ++e) {
      if (counts[e] > 0) outs.push_back(experts.ForwardOne(e, x.narrow(0, offset, counts[e])));
      offset += counts[e];
    }
    y = at::cat(outs);
  } else if (form == Form::kGrouped) {
    y = experts.ForwardGrouped(x, counts);
  } else {
    y = experts.ForwardGroupedMm(x, counts, /*library=*/false);
  }
  y.backward(gy);
  auto grad_or_zero = [](const at::Tensor& p) {
    return p.grad().defined() ? p.grad().clone() : at::zeros_like(p);
  };
  return {y.detach(),
          x.grad().clone(),
          grad_or_zero(experts.w1),
          grad_or_zero(experts.b1),
          grad_or_zero(experts.w2),
          grad_or_zero(experts.b2)};
}

TEST(MoeKernels, GroupedExpertsBackwardEqualsPerExpertAutograd) {
  at::manual_seed(11);
  const int old_threads = at::get_num_threads();
  at::set_num_threads(2);
  Experts experts(4, 8, 16);
  const std::vector<int64_t> counts = {5, 0, 3, 9};  // expert 1 gets no rows
  const at::Tensor x = at::randn({17, 8});
  const at::Tensor gy = at::randn({17, 8});
  const GroupedResult want = RunGrouped(experts, x, gy, counts, Form::kReference);
  for (const char* mode : {"0", "1"}) {  // serial, and experts in parallel
    setenv("MOEBENCH_EXPERT_PARALLEL", mode, 1);
    const GroupedResult got = RunGrouped(experts, x, gy, counts, Form::kGrouped);
    EXPECT_TRUE(AllClose(got.y, want.y)) << "mode " << mode;
    EXPECT_TRUE(AllClose(got.gx, want.gx)) << "mode " << mode;
    EXPECT_TRUE(AllClose(got.gw1, want.gw1)) << "mode " << mode;
    EXPECT_TRUE(AllClose(got.gb1, want.gb1)) << "mode " << mode;
    EXPECT_TRUE(AllClose(got.gw2, want.gw2)) << "mode " << mode;
    EXPECT_TRUE(AllClose(got.gb2, want.gb2)) << "mode " << mode;
    EXPECT_EQ(got.gw1[1].abs().sum().item<float>(), 0.0f) << "empty expert got gradient";
    EXPECT_EQ(got.gb2[1].abs().sum().item<float>(), 0.0f) << "empty expert got gradient";
  }
  unsetenv("MOEBENCH_EXPERT_PARALLEL");
  at::set_num_threads(old_threads);
}

// Note [Grouped GEMM experts]: the experts as two grouped GEMMs with per-row biases (each GEMM
// here one mm per expert, as without the library's kernel) against per-expert autograd:
// outputs and all five gradients, an expert without rows getting exactly zero.
TEST(MoeKernels, GroupedGemmFormEqualsPerExpertAutograd) {
  at::manual_seed(12);
  Experts experts(4, 8, 16);
  const std::vector<int64_t> counts = {5, 0, 3, 9};
  const at::Tensor x = at::randn({17, 8});
  const at::Tensor gy = at::randn({17, 8});
  const GroupedResult want = RunGrouped(experts, x, gy, counts, Form::kReference);
  const GroupedResult got = RunGrouped(experts, x, gy, counts, Form::kGroupedMm);
  EXPECT_TRUE(AllClose(got.y, want.y));
  EXPECT_TRUE(AllClose(got.gx, want.gx));
  EXPECT_TRUE(AllClose(got.gw1, want.gw1));
  EXPECT_TRUE(AllClose(got.gb1, want.gb1));
  EXPECT_TRUE(AllClose(got.gw2, want.gw2));
  EXPECT_TRUE(AllClose(got.gb2, want.gb2));
  EXPECT_EQ(got.gw1[1].abs().sum().item<float>(), 0.0f) << "empty expert got gradient";
  EXPECT_EQ(got.gb1[1].abs().sum().item<float>(), 0.0f) << "empty expert got gradient";
  // The library's kernel only where the linked LibTorch has it and the rows are bf16 on a GPU;
  // on the CPU the schedule stays the per-expert loop.
  EXPECT_NE(ExpertSchedule(at::Device(at::kCPU), at::kBFloat16), "grouped_mm");
  if (!compat::kHaveGroupedMm) {
    EXPECT_THROW(experts.ForwardGroupedMm(x, counts, /*library=*/true), std::logic_error);
  }
}

TEST(MoeKernels, GroupedExpertsRejectCountsThatDoNotCoverTheRows) {
  Experts experts(2, 4, 8);
  try {
    experts.ForwardGrouped(at::randn({5, 4}), {2, 2});
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("add up to 4 rows, x has 5"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(experts.ForwardGrouped(at::randn({4, 4}), {4}), std::invalid_argument);
}

// One worker: the layer's single-sort path equals the oracle replaying its assignments.
TEST(MoeKernels, MoeLayerWithOneWorkerEqualsOracle) {
  at::manual_seed(12);
  const int64_t t = 29, d = 8, e = 4;
  LocalComm comm(Topology{1, 1});
  SwitchOptions opt;
  opt.capacity_factor = 1.0;
  opt.min_capacity = 0;
  MoeLayerOptions lo;
  lo.d_model = d;
  lo.d_hidden = 12;
  lo.num_experts = e;
  MoeLayer layer(lo, std::make_shared<SwitchRouter>(d, e, opt), &comm);
  at::Tensor x = at::randn({t, d}).requires_grad_(true);
  RouteContext ctx;
  ctx.training = true;
  at::Tensor y = layer->forward(x, at::Tensor(), ctx);
  const LayerAssignments& a = layer->last_assignments();
  at::Tensor probe = at::randn({t, d});
  (y * probe).sum().backward();
  Experts& ex = layer->experts();
  at::Tensor g_w1 = ex.w1.grad().clone(), g_b1 = ex.b1.grad().clone();
  ex.w1.mutable_grad().zero_();
  ex.b1.mutable_grad().zero_();
  at::Tensor y_oracle = EinsumDispatchCombine(x, a.token, a.expert, a.slot, a.weight.detach(),
                                              a.capacity, layer->experts());
  (y_oracle * probe).sum().backward();
  EXPECT_TRUE(AllClose(y, y_oracle));
  EXPECT_TRUE(AllClose(g_w1, ex.w1.grad()));
  EXPECT_TRUE(AllClose(g_b1, ex.b1.grad()));
}

}  // namespace
}  // namespace moebench
