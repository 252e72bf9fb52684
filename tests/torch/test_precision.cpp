// Device and precision (Note [Device and precision]): autocast scopes, bf16 experts with fp32
// weights and gradients, fp32 routers, bf16 bytes on the exchange, device resolution, run spec.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "harness/autocast.h"
#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "harness/spec/run_spec.h"
#include "harness/train/device.h"
#include "methods/method.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

TEST(Autocast, ScopesNestAndRestore) {
  ASSERT_FALSE(compat::AutocastEnabled(at::kCPU));
  {
    AutocastScope on(at::kCPU, true);
    EXPECT_TRUE(compat::AutocastEnabled(at::kCPU));
    EXPECT_EQ(compat::AutocastDtype(at::kCPU), at::kBFloat16);
    const at::Tensor a = at::randn({4, 8});
    EXPECT_EQ(at::mm(a, at::randn({8, 3})).scalar_type(), at::kBFloat16);
    EXPECT_EQ(MatmulDtype(a), at::kBFloat16);
    EXPECT_EQ(MatmulDtype(a.to(at::kDouble)), at::kDouble);  // autocast leaves fp64 alone
    {
      NoAutocast off(at::kCPU);
      EXPECT_FALSE(compat::AutocastEnabled(at::kCPU));
      EXPECT_EQ(at::mm(a, at::randn({8, 3})).scalar_type(), at::kFloat);
      EXPECT_EQ(MatmulDtype(a), at::kFloat);
    }
    EXPECT_TRUE(compat::AutocastEnabled(at::kCPU));
    AutocastScope disabled(at::kCPU, false);  // enable = false changes nothing
    EXPECT_TRUE(compat::AutocastEnabled(at::kCPU));
  }
  EXPECT_FALSE(compat::AutocastEnabled(at::kCPU));
  EXPECT_EQ(at::mm(at::randn({2, 2}), at::randn({2, 2})).scalar_type(), at::kFloat);
}

// Grouped experts under bf16 autocast compute in bf16 and hand fp32 gradients to the fp32
// weights. Reference: the same maths as ATen's autograd composite, in bf16 (a row whose fp32
// gradient nearly cancels can differ by far more than bf16's rounding from the fp32 one, so
// the fp32 computation is only a loose check, on the weight gradient).
TEST(Autocast, GroupedExpertsRunInBf16WithFp32Gradients) {
  at::manual_seed(5);
  Experts experts(3, 16, 32);
  const at::Tensor x = at::randn({12, 16});
  const std::vector<int64_t> counts = {5, 0, 7};
  const at::Tensor g = at::randn({12, 16});

  const at::Tensor x32 = x.clone().requires_grad_(true);
  experts.ForwardGrouped(x32, counts).backward(g);
  const at::Tensor w1_grad32 = experts.w1.grad().clone();
  for (at::Tensor p : experts.parameters()) p.mutable_grad() = at::Tensor();

  // The composite reference in bf16, on copies of the weights.
  const at::Tensor w1 = experts.w1.detach().clone().requires_grad_(true);
  const at::Tensor b1 = experts.b1.detach().clone().requires_grad_(true);
  const at::Tensor w2 = experts.w2.detach().clone().requires_grad_(true);
  const at::Tensor b2 = experts.b2.detach().clone().requires_grad_(true);
  const at::Tensor x_ref = x.clone().requires_grad_(true);
  const at::ScalarType bf = at::kBFloat16;
  std::vector<at::Tensor> parts;
  for (int64_t e = 0, offset = 0; e < 3; offset += counts[e], ++e) {
    if (counts[e] == 0) continue;
    const at::Tensor xe = x_ref.narrow(0, offset, counts[e]).to(bf);
    const at::Tensor h = at::addmm(b1[e].to(bf), xe, w1[e].to(bf)).relu();
    parts.push_back(at::addmm(b2[e].to(bf), h, w2[e].to(bf)));
  }
  const at::Tensor y_ref = at::cat(parts);
  y_ref.backward(g.to(bf));

  const at::Tensor x16 = x.clone().requires_grad_(true);
  at::Tensor y;
  {
    AutocastScope bf16(at::kCPU, true);
    y = experts.ForwardGrouped(x16, counts);
  }
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  y.backward(g.to(bf));
  EXPECT_EQ(experts.w1.grad().scalar_type(), at::kFloat);
  EXPECT_EQ(x16.grad().scalar_type(), at::kFloat);
  auto rel = [](const at::Tensor& a, const at::Tensor& b) {
    return ((a.to(at::kFloat) - b.to(at::kFloat)).norm() / b.to(at::kFloat).norm()).item<double>();
  };
  EXPECT_LT(rel(y, y_ref), 1e-2);
  EXPECT_LT(rel(x16.grad(), x_ref.grad()), 1e-2);
  EXPECT_LT(rel(experts.w1.grad(), w1.grad()), 1e-2);
  EXPECT_LT(rel(experts.b1.grad(), b1.grad()), 1e-2);
  EXPECT_LT(rel(experts.w2.grad(), w2.grad()), 1e-2);
  EXPECT_LT(rel(experts.b2.grad(), b2.grad()), 1e-2);
  // Expert 1 had no rows: its gradient is exactly zero.
  EXPECT_TRUE(at::equal(experts.w1.grad()[1], at::zeros_like(experts.w1.grad()[1])));
  // Against fp32: the bf16 reference itself is ~12% off here (relu masks flip on rounded
  // pre-activations at d 16), so this only checks that bf16 ran and the gradient is the same
  // function.
  const double rel32 = rel(experts.w1.grad(), w1_grad32);
  EXPECT_LT(rel32, 0.3);
  EXPECT_GT(rel32, 0.0);  // it did run in bf16
}

// Note [Weight casts once per step]: inside a CastCacheScope, the experts' weights are cast to
// bf16 once for every autocast scope in it (the trainer's passes and micro-batches), and the
// gradients of two passes through the one cast are those of two passes through two casts.
TEST(Autocast, ExpertWeightsAreCastOncePerStepAndGradientsAreUnchanged) {
  at::manual_seed(6);
  Experts experts(2, 8, 16);
  const at::Tensor x = at::randn({10, 8});
  const std::vector<int64_t> counts = {4, 6};
  {
    CastCacheScope step(true);
    at::Tensor first, second;
    {
      AutocastScope pass(at::kCPU, true);
      first = CastWeight(experts.w1, at::kBFloat16);
    }
    {
      AutocastScope pass(at::kCPU, true);
      second = CastWeight(experts.w1, at::kBFloat16);
    }
    EXPECT_EQ(first.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(first.is_same(second));  // one cast, reused by the second pass
  }
  {
    // Without the step scope each pass casts again (both casts alive: distinct tensors).
    at::Tensor first, second;
    {
      AutocastScope pass(at::kCPU, true);
      first = CastWeight(experts.w1, at::kBFloat16);
    }
    {
      AutocastScope pass(at::kCPU, true);
      second = CastWeight(experts.w1, at::kBFloat16);
    }
    EXPECT_FALSE(first.is_same(second));
    EXPECT_TRUE(at::equal(first, second));
  }
  // Two passes, each with its own backward (as two micro-batches), with and without the step
  // scope: the same weight gradients, bit for bit.
  auto two_passes = [&](bool once) {
    for (at::Tensor p : experts.parameters()) p.mutable_grad() = at::Tensor();
    CastCacheScope step(once);
    for (int pass = 0; pass < 2; ++pass) {
      at::Tensor y;
      {
        AutocastScope bf16(at::kCPU, true);
        y = experts.ForwardGrouped(x * (pass + 1), counts);
      }
      y.to(at::kFloat).square().sum().backward();
    }
    std::vector<at::Tensor> grads;
    for (const at::Tensor& p : experts.parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  const std::vector<at::Tensor> cached = two_passes(true);
  const std::vector<at::Tensor> plain = two_passes(false);
  ASSERT_EQ(cached.size(), plain.size());
  for (size_t i = 0; i < cached.size(); ++i) {
    EXPECT_EQ(cached[i].scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(cached[i], plain[i])) << "parameter " << i;
  }
}

MoeLayer MakeSwitchLayer(Comm* comm) {
  at::manual_seed(11);
  MoeLayerOptions lo;
  lo.d_model = 16;
  lo.d_hidden = 32;
  lo.num_experts = 4;
  auto m = MakeMethod("switch", {{"jitter", "0"}});
  return MoeLayer(lo, m->MakeRouter({0, false, 16, 32, 4}), comm);
}

// The router stays in fp32 under autocast, so the assignments are exactly the fp32 ones; the
// rows on the exchange are bf16, so the meter counts half the bytes.
TEST(Autocast, MoeLayerRoutesInFp32AndMovesBf16Rows) {
  LocalComm comm32(Topology{2, 1}), comm16(Topology{2, 1});
  MoeLayer a = MakeSwitchLayer(&comm32);
  MoeLayer b = MakeSwitchLayer(&comm16);
  at::manual_seed(3);
  const at::Tensor x = at::randn({32, 16});
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 1;
  ctx.step = 1;
  const at::Tensor y32 = a->forward(x, at::Tensor(), ctx);
  at::Tensor y16;
  {
    AutocastScope bf16(at::kCPU, true);
    y16 = b->forward(x, at::Tensor(), ctx);
  }
  EXPECT_EQ(y32.scalar_type(), at::kFloat);
  EXPECT_EQ(y16.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(a->last_assignments().token, b->last_assignments().token));
  EXPECT_TRUE(at::equal(a->last_assignments().expert, b->last_assignments().expert));
  EXPECT_TRUE(at::equal(a->last_assignments().weight, b->last_assignments().weight));
  EXPECT_EQ(a->last_assignments().weight.scalar_type(), at::kFloat);
  const double rel = ((y16.to(at::kFloat) - y32).norm() / y32.norm()).item<double>();
  EXPECT_LT(rel, 3e-2);

  auto off_worker_bytes = [](Comm& c) {
    int64_t bytes = 0, calls = 0;
    for (const auto& [key, counters] : c.meter().Drain()) {
      if (key.second != "fwd") continue;
      bytes += counters.logical_off_worker();
      calls += counters.calls;
    }
    EXPECT_GT(calls, 0);
    return bytes;
  };
  const int64_t bytes32 = off_worker_bytes(comm32);
  const int64_t bytes16 = off_worker_bytes(comm16);
  ASSERT_GT(bytes32, 0);
  EXPECT_EQ(bytes16 * 2, bytes32);
}

TEST(Device, ResolvesCpuAndRejectsUnknownValuesByName) {
  EXPECT_EQ(ResolveDevice("cpu", 0), at::Device(at::kCPU));
  EXPECT_EQ(DeviceDescription(at::Device(at::kCPU)), "cpu");
  try {
    ResolveDevice("gpu", 0);
    FAIL() << "gpu accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown device 'gpu'"), std::string::npos) << e.what();
  }
#ifndef MOEBENCH_CUDA
  try {
    ResolveDevice("cuda", 0);
    FAIL() << "cuda accepted by a CPU build";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("-DMOEBENCH_CUDA=ON"), std::string::npos) << e.what();
  }
#endif
  EXPECT_FALSE(UsesBf16("fp32"));
  EXPECT_TRUE(UsesBf16("bf16"));
  EXPECT_THROW(UsesBf16("fp16"), std::invalid_argument);
}

TEST(Device, OnDeviceIsANoOpOnTheSameDevice) {
  const at::Tensor t = at::arange(4);
  EXPECT_TRUE(OnDevice(t, at::Device(at::kCPU)).is_same(t));
  EXPECT_FALSE(OnDevice(at::Tensor(), at::Device(at::kCPU)).defined());
}

TEST(RunSpecPrecision, DefaultsKeepOldIdsAndOtherValuesChangeThem) {
  RunSpec s;
  const std::string id = s.RunId();
  EXPECT_EQ(s.ToJson().count("device"), 0u);
  EXPECT_EQ(s.ToJson().count("precision"), 0u);
  RunSpec b = s;
  b.precision = "bf16";
  EXPECT_NE(b.RunId(), id);
  EXPECT_EQ(RunSpec::FromJson(b.ToJson()).precision, "bf16");
  RunSpec c = s;
  c.device = "cuda";
  EXPECT_NE(c.RunId(), id);
  EXPECT_NE(c.RunId(), b.RunId());
  EXPECT_EQ(RunSpec::FromJson(c.ToJson()).device, "cuda");
  EXPECT_EQ(RunSpec::FieldDefaults().at("precision"), "fp32");
  EXPECT_EQ(RunSpec::FieldDefaults().at("device"), "cpu");
}

}  // namespace
}  // namespace moebench
