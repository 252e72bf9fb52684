// GPU batch defaults (Note [GPU batch defaults]) and the tensor memory a step needs (Note
// [Tensor memory]): the resolution rules, the same run through a manifest, the measuring scope
// against hand-counted bytes, and the defaults' micro-batches against memory measured here.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "harness/comm/local_comm.h"
#include "harness/model/sizes.h"
#include "harness/model/transformer.h"
#include "harness/spec/resolve.h"
#include "harness/sweep/manifest.h"
#include "harness/train/tensor_memory.h"
#include "methods/method.h"

namespace moebench {
namespace {

RunSpec GpuSpec(const std::string& size, int world_size = 1) {
  RunSpec spec;
  spec.size = size;
  spec.device = "cuda";
  spec.world_size = world_size;
  return spec;
}

TEST(GpuBatch, CpuRunsKeepTheSpecDefaults) {
  RunSpec spec;
  spec.size = "base";
  ResolveBatch(spec, {});
  EXPECT_EQ(spec.tokens_per_batch, 2048);
  EXPECT_EQ(spec.grad_accum, 1);
  const std::string id = spec.RunId();
  RunSpec plain;
  plain.size = "base";
  EXPECT_EQ(id, plain.RunId());  // CPU run ids made before the rule are unchanged
}

TEST(GpuBatch, AGpuRunGetsItsSizesBudgetPerDevice) {
  for (const ModelConfig& preset : SizePresets()) {
    SCOPED_TRACE(preset.size);
    const GpuBatch gpu = GpuBatchDefaults(preset.size);  // every preset has a row
    ASSERT_GT(gpu.tokens_per_device, 0);
    ASSERT_GT(gpu.micro_batch_tokens, 0);
    for (int ranks : {1, 4}) {
      RunSpec spec = GpuSpec(preset.size, ranks);
      ResolveBatch(spec, {});
      EXPECT_EQ(spec.tokens_per_batch, gpu.tokens_per_device * ranks);
      EXPECT_EQ(spec.grad_accum,
                (gpu.tokens_per_device + gpu.micro_batch_tokens - 1) / gpu.micro_batch_tokens);
      RunSpec again = spec;
      ResolveBatch(again, {});  // idempotent
      EXPECT_EQ(again.RunId(), spec.RunId());
    }
  }
  // By hand: large holds 16384 tokens per forward, so its 65536-token step is 4 micro-batches.
  RunSpec large = GpuSpec("large");
  ResolveBatch(large, {});
  EXPECT_EQ(large.tokens_per_batch, 65536);
  EXPECT_EQ(large.grad_accum, 4);
  // With CUDA graphs half as many tokens per forward (a step's tensors are held twice): base's
  // 65536-token step, one forward of 65536 without graphs, is two of 32768 with them; large's is
  // eight of 8192. The budget per step stays.
  RunSpec base = GpuSpec("base");
  ResolveBatch(base, {});
  EXPECT_EQ(base.grad_accum, 1);
  for (const auto& [size, accum] :
       std::vector<std::pair<std::string, int64_t>>{{"base", 2}, {"large", 8}}) {
    RunSpec graphs = GpuSpec(size);
    graphs.cuda_graph = "on";
    ResolveBatch(graphs, {});
    EXPECT_EQ(graphs.tokens_per_batch, 65536) << size;
    EXPECT_EQ(graphs.grad_accum, accum) << size;
  }
  EXPECT_THROW(GpuBatchDefaults("huge"), std::invalid_argument);
}

TEST(GpuBatch, StatedValuesAreKept) {
  // tokens_per_batch stated: the micro-batches it needs per device (large: 16384 per forward).
  RunSpec spec = GpuSpec("large", 2);
  spec.tokens_per_batch = 100000;  // 50000 per rank: ceil(50000 / 16384) = 4
  ResolveBatch(spec, {true, false});
  EXPECT_EQ(spec.tokens_per_batch, 100000);
  EXPECT_EQ(spec.grad_accum, 4);
  spec.tokens_per_batch = 4096;  // fits one forward
  ResolveBatch(spec, {true, false});
  EXPECT_EQ(spec.grad_accum, 1);
  // grad_accum stated: the size's budget, in the stated micro-batches.
  RunSpec accum = GpuSpec("base");
  accum.grad_accum = 8;
  ResolveBatch(accum, {false, true});
  EXPECT_EQ(accum.tokens_per_batch, GpuBatchDefaults("base").tokens_per_device);
  EXPECT_EQ(accum.grad_accum, 8);
  // Both stated: untouched.
  RunSpec both = GpuSpec("base");
  both.tokens_per_batch = 2048;
  ResolveBatch(both, {true, true});
  EXPECT_EQ(both.tokens_per_batch, 2048);
  EXPECT_EQ(both.grad_accum, 1);
}

TEST(GpuBatch, AManifestResolvesLikeTheFlags) {
  const Manifest m = ParseManifest(
      "[matrix]\nmethod = [\"switch\"]\nsize = [\"base\"]\ndevice = [\"cpu\", \"cuda\"]\n",
      "m.toml");
  ASSERT_EQ(m.runs.size(), 2u);
  EXPECT_EQ(m.runs[0].spec.tokens_per_batch, 2048);
  EXPECT_EQ(m.runs[1].spec.tokens_per_batch, GpuBatchDefaults("base").tokens_per_device);
  RunSpec flags = GpuSpec("base");  // `train --size base --device cuda`
  ResolveBatch(flags, {});
  ResolveKnobs(flags);
  EXPECT_EQ(m.runs[1].id, flags.RunId());
  // A budget stated anywhere in the manifest is the runs' budget, in the micro-batches it needs.
  const Manifest stated = ParseManifest(
      "[matrix]\nmethod = [\"switch\"]\nsize = [\"large\"]\n[train]\ndevice = \"cuda\"\n"
      "tokens_per_batch = 40000\n",
      "m.toml");
  EXPECT_EQ(stated.runs[0].spec.tokens_per_batch, 40000);
  EXPECT_EQ(stated.runs[0].spec.grad_accum, 3);  // ceil(40000 / 16384)
}

TEST(GpuBatch, OutOfMemoryAdviceNamesTheBatchAndTheFix) {
  RunSpec spec = GpuSpec("large", 2);
  ResolveBatch(spec, {});  // 131072 tokens, 4 micro-batches: 16384 per forward per rank
  const std::string advice = OutOfMemoryAdvice(spec);
  EXPECT_NE(advice.find("tokens_per_batch 131072"), std::string::npos) << advice;
  EXPECT_NE(advice.find("about 16384 padded tokens per forward"), std::string::npos) << advice;
  EXPECT_NE(advice.find("--grad-accum 8"), std::string::npos) << advice;
}

TEST(TensorMemory, CountsTheBytesOfTensorsMadeInTheScope) {
  const at::Tensor before = at::ones({100}, at::kFloat);  // 400 B made before: never counted
  TensorMemoryScope scope(at::kCPU);
  at::Tensor a = at::empty({1000}, at::kFloat);  // 4000 B
  at::Tensor b = at::empty({250}, at::kDouble);  // 2000 B
  EXPECT_EQ(scope.LiveBytes(), 6000);
  a = at::Tensor();  // freed
  EXPECT_EQ(scope.LiveBytes(), 2000);
  at::Tensor c = at::empty({10, 50}, at::kFloat);  // 2000 B
  EXPECT_EQ(scope.LiveBytes(), 4000);
  EXPECT_EQ(scope.PeakBytes(), 6000);
  at::Tensor v = c.view({500});  // a view allocates nothing
  EXPECT_EQ(scope.LiveBytes(), 4000);
}

TEST(TensorMemory, SeesWhatTheBackwardPassAllocates) {
  const at::Tensor x = at::rand({1000}).requires_grad_(true);
  TensorMemoryScope scope(at::kCPU);
  // x * x is a 4000-byte temporary, freed after the sum (which saves no input); y is 4 B.
  const at::Tensor y = (x * x).sum();
  const int64_t forward = scope.LiveBytes();
  y.backward();  // x.grad: 4000 B, live after the pass
  EXPECT_GE(scope.LiveBytes(), forward + 4000);
  EXPECT_GE(scope.PeakBytes(), scope.LiveBytes());
}

// Note [GPU batch defaults]: each size's micro-batch, with what a step holds between steps
// (fp32 weights, gradients, Adam's two moments: 16 bytes per parameter) and the peak of the
// tensors one forward + backward allocates, measured here at two budgets and taken as linear in
// the tokens, fits in 40 GiB.
double MeasuredStepPeak(Transformer& model, Method& method, int64_t sentences) {
  constexpr int64_t kLength = 32, kVocab = 1000;
  const at::Tensor src = at::randint(4, kVocab, {sentences, kLength}, at::kLong);
  const at::Tensor tgt = at::randint(4, kVocab, {sentences, kLength + 1}, at::kLong);
  const at::Tensor tgt_in = tgt.narrow(1, 0, kLength).contiguous();
  const at::Tensor tgt_out = tgt.narrow(1, 1, kLength).contiguous();
  auto step = [&] {
    RouteContext ctx;
    ctx.training = true;
    ctx.step = 1;
    const ForwardFn forward = [&](int pass) {
      RouteContext c = ctx;
      c.pass = pass;
      ForwardOutput out;
      out.logits = model->forward(src, tgt_in, c);
      auto [ce, nll] = LabelSmoothedCrossEntropy(out.logits, tgt_out, 0.1, model->pad_id());
      out.ce_sum = ce;
      out.nll_sum = nll;
      out.aux = model->AuxLoss();
      out.target_mask = tgt_out.ne(model->pad_id());
      out.ntokens = sentences * kLength;
      return out;
    };
    method.Objective(forward).loss.backward();
  };
  step();  // the gradients exist from here on, as between training steps
  TensorMemoryScope scope(at::kCPU);
  step();
  return static_cast<double>(scope.PeakBytes());
}

TEST(TensorMemory, TheGpuMicroBatchesFitTheirBudget) {
  for (const std::string size : {"tiny", "small", "base"}) {
    SCOPED_TRACE(size);
    at::manual_seed(1);
    ModelConfig cfg = SizePreset(size);
    cfg.vocab = 1000;
    const std::unique_ptr<Method> method = MakeMethod("switch", {});
    LocalComm comm(Topology{1, 1});
    Transformer model(cfg, method.get(), &comm);
    model->train();
    double params = 0;
    for (const at::Tensor& p : model->parameters()) params += static_cast<double>(p.numel());
    const double at8 = MeasuredStepPeak(model, *method, 8);    // 256 tokens
    const double at16 = MeasuredStepPeak(model, *method, 16);  // 512 tokens
    const double per_token = (at16 - at8) / 256.0;
    ASSERT_GT(per_token, 0);
    const double tokens = static_cast<double>(GpuBatchDefaults(size).micro_batch_tokens);
    const double need = 16.0 * params + (at8 - 256.0 * per_token) + per_token * tokens;
    EXPECT_LT(need, 40.0 * (1 << 30)) << per_token << " bytes per token";
  }
}

}  // namespace
}  // namespace moebench
