// Note [Replayable optimizer step] (harness/train/replayable_adam.cpp): the trainer's update
// against LibTorch's Adam, the learning rate on the device against the host formula, the
// gradient clipping by hand, and what a CUDA graph captured from one update would bake in
// (OpTrace of two consecutive steps).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <torch/optim/adam.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "harness/comm/local_comm.h"
#include "harness/host_read.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/lr_schedule.h"
#include "harness/train/replayable_adam.h"
#include "tests/torch/op_trace.h"

namespace moebench {
namespace {

constexpr double kBase = 1e-2;
constexpr int64_t kWarmup = 3;

torch::optim::AdamOptions Options() {
  return torch::optim::AdamOptions(kBase).betas({0.9, 0.98}).eps(1e-9);
}

// Three parameters; the third has no gradient in steps 1 and 2 (as an expert that got no token
// on the dynamic path): LibTorch counts its Adam steps from its first gradient.
std::vector<at::Tensor> MakeParams() {
  at::manual_seed(3);
  return {at::randn({5, 7}).requires_grad_(), at::randn({3}).requires_grad_(),
          at::randn({4, 2}).requires_grad_()};
}

// Gradients of step s (the same for every copy of the parameters).
void SetGradients(std::vector<at::Tensor>& params, int64_t s) {
  at::manual_seed(100 + s);
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor g = at::randn(params[i].sizes());
    if (i == 2 && s <= 2) {
      params[i].mutable_grad() = at::Tensor();
    } else {
      params[i].mutable_grad() = g;
    }
  }
}

std::vector<at::Tensor> Clone(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

// The largest |a - b| / max(|b|, 1e-30) over the elements of two parameter lists.
double MaxRelativeDifference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor d = (a[i] - b[i]).abs() / b[i].abs().clamp_min(1e-30);
    worst = std::max(worst, d.max().item<double>());
  }
  return worst;
}

// The same parameters twice: ours updated by ReplayableAdam, theirs by LibTorch's Adam.
struct Sides {
  std::vector<at::Tensor> ours = MakeParams();
  std::vector<at::Tensor> theirs = Clone(ours);
  torch::optim::Adam adam_ours{ours, Options()};
  torch::optim::Adam adam_theirs{theirs, Options()};
  ReplayableAdam update{adam_ours, kBase, kWarmup};
};

TEST(ReplayableAdam, TheLearningRateOnTheDeviceIsTheHostFormulas) {
  for (int64_t warmup : {0, 1, 10}) {
    for (int64_t s = 0; s <= 50; ++s) {
      const double device =
          InverseSqrtLr(3e-4, at::full({}, static_cast<double>(s), at::kDouble), warmup)
              .item<double>();
      // Division, min and sqrt are correctly rounded: the same bits as the host's.
      EXPECT_EQ(device, InverseSqrtLr(3e-4, s, warmup)) << "step " << s << " warmup " << warmup;
    }
  }
}

// Eight steps of the learning-rate schedule's warm-up and decay: the parameters, both moments
// and the step counts agree with LibTorch's Adam given each step's learning rate.
TEST(ReplayableAdam, UpdatesAsLibTorchsAdam) {
  Sides sides;
  std::vector<at::Tensor>& ours = sides.ours;
  std::vector<at::Tensor>& theirs = sides.theirs;
  torch::optim::Adam& adam_ours = sides.adam_ours;
  torch::optim::Adam& adam_theirs = sides.adam_theirs;
  ReplayableAdam& update = sides.update;
  for (int64_t s = 1; s <= 8; ++s) {
    SetGradients(ours, s);
    SetGradients(theirs, s);
    const double lr = update.Step(s).item<double>();
    EXPECT_EQ(lr, InverseSqrtLr(kBase, s, kWarmup));
    static_cast<torch::optim::AdamOptions&>(adam_theirs.param_groups()[0].options())
        .lr(InverseSqrtLr(kBase, s, kWarmup));
    adam_theirs.step();
    SCOPED_TRACE("step " + std::to_string(s));
    // The bias corrections' pow on the device may differ from std::pow in the last bit of a
    // double; in fp32 parameters that is below one rounding.
    EXPECT_LT(MaxRelativeDifference(ours, theirs), 1e-6);
    EXPECT_TRUE(ours[2].equal(theirs[2]) || s > 2) << "no gradient yet: unchanged";
  }
  for (size_t i = 0; i < ours.size(); ++i) {
    SCOPED_TRACE("parameter " + std::to_string(i));
    const torch::optim::AdamParamState* a = AdamState(adam_ours, ours[i]);
    const torch::optim::AdamParamState* b = AdamState(adam_theirs, theirs[i]);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(a->step(), i == 2 ? 6 : 8);
    EXPECT_EQ(a->step(), b->step());
    EXPECT_LT(MaxRelativeDifference({a->exp_avg()}, {b->exp_avg()}), 1e-6);
    EXPECT_LT(MaxRelativeDifference({a->exp_avg_sq()}, {b->exp_avg_sq()}), 1e-6);
  }
}

// What a graph captured from one update would bake in: two consecutive updates run the same
// ops with the same arguments and read nothing; LibTorch's Adam passes each step's step size as
// addcdiv_'s scalar, so its two updates differ (the reason for this class).
TEST(ReplayableAdam, ConsecutiveStepsRunTheSameOps) {
  Sides sides;
  std::vector<at::Tensor>& ours = sides.ours;
  std::vector<at::Tensor>& theirs = sides.theirs;
  torch::optim::Adam& adam_theirs = sides.adam_theirs;
  ReplayableAdam& update = sides.update;
  for (int64_t s = 1; s <= 3; ++s) {
    SetGradients(ours, s + 2);  // every parameter with a gradient
    update.Step(s);
    SetGradients(theirs, s + 2);
    adam_theirs.step();
  }
  std::vector<std::vector<std::string>> traces, lib_traces;
  for (int64_t s = 4; s <= 5; ++s) {
    SetGradients(ours, s);
    SetGradients(theirs, s);
    const int64_t reads = HostReadCount();
    traces.push_back(testing::OpTrace([&] { update.Step(s); }));
    EXPECT_EQ(HostReadCount(), reads);
    static_cast<torch::optim::AdamOptions&>(adam_theirs.param_groups()[0].options())
        .lr(InverseSqrtLr(kBase, s, kWarmup));
    lib_traces.push_back(testing::OpTrace([&] { adam_theirs.step(); }));
  }
  EXPECT_GT(traces[0].size(), 20u);
  EXPECT_EQ(testing::TraceDifferences(traces[0], traces[1]), "");
  for (const std::string& op : traces[0]) {
    EXPECT_EQ(op.find("aten::item"), std::string::npos) << op;
    EXPECT_EQ(op.find("aten::_local_scalar_dense"), std::string::npos) << op;
  }
  EXPECT_NE(testing::TraceDifferences(lib_traces[0], lib_traces[1]), "");
}

// A checkpoint's optimizer state, saved after step 3 and loaded into a new optimizer (whose
// ReplayableAdam was made before the load, as the trainer makes it), continues as the
// uninterrupted run: the same bits.
TEST(ReplayableAdam, ContinuesFromALoadedState) {
  std::vector<at::Tensor> a = MakeParams();
  torch::optim::Adam adam_a(a, Options());
  ReplayableAdam update_a(adam_a, kBase, kWarmup);
  for (int64_t s = 1; s <= 3; ++s) {
    SetGradients(a, s);
    update_a.Step(s);
  }
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    adam_a.save(archive);
    archive.save_to(saved);
  }
  std::vector<at::Tensor> b = Clone(a);
  torch::optim::Adam adam_b(b, Options());
  ReplayableAdam update_b(adam_b, kBase, kWarmup);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    adam_b.load(archive);
  }
  update_b.Sync();
  ASSERT_NE(AdamState(adam_b, b[0]), nullptr);
  EXPECT_EQ(AdamState(adam_b, b[0])->step(), 3);
  EXPECT_EQ(AdamState(adam_b, b[2])->step(), 1);  // its first gradient was at step 3
  for (int64_t s = 4; s <= 6; ++s) {
    SetGradients(a, s);
    SetGradients(b, s);
    update_a.Step(s);
    update_b.Step(s);
  }
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << "parameter " << i;
}

// Global norm by hand: dense gradients (3, 4) and (0), expert gradient (12): sqrt(9 + 16 + 144)
// = 13. Above max_norm every gradient is scaled by max_norm / (13 + 1e-6); below, none changes.
TEST(ClipGlobalGradNorm, ScalesByTheGlobalNormOnTheDevice) {
  LocalComm comm(Topology{2, 2});
  for (double max_norm : {1.3, 20.0}) {
    SCOPED_TRACE("max_norm " + std::to_string(max_norm));
    ParamSplit split;
    split.dense = {at::zeros({2}).requires_grad_(), at::zeros({1}).requires_grad_(),
                   at::zeros({3}).requires_grad_()};  // the last: no gradient
    split.expert = {at::zeros({1}).requires_grad_()};
    split.dense[0].mutable_grad() = at::tensor({3.0f, 4.0f});
    split.dense[1].mutable_grad() = at::tensor({0.0f});
    split.expert[0].mutable_grad() = at::tensor({12.0f});
    const int64_t reads = HostReadCount();
    const at::Tensor norm = ClipGlobalGradNorm(comm, split, max_norm);
    EXPECT_EQ(HostReadCount(), reads);
    EXPECT_EQ(norm.dim(), 0);
    EXPECT_EQ(norm.scalar_type(), at::kDouble);
    EXPECT_EQ(norm.item<double>(), 13.0);
    const float coef = max_norm < 13 ? static_cast<float>(max_norm / (13.0 + 1e-6)) : 1.0f;
    EXPECT_EQ(split.dense[0].grad()[0].item<float>(), 3.0f * coef);
    EXPECT_EQ(split.dense[0].grad()[1].item<float>(), 4.0f * coef);
    EXPECT_EQ(split.expert[0].grad()[0].item<float>(), 12.0f * coef);
    EXPECT_FALSE(split.dense[2].grad().defined());
  }
}

}  // namespace
}  // namespace moebench
