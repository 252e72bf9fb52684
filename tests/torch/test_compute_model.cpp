// The compute model (Note [Compute model]): FLOP counts by hand, the dense baseline's sizings,
// the experts' FLOPs by worker, and the modeled times.
#include <gtest/gtest.h>

#include "harness/comm/local_comm.h"
#include "harness/model/compute_model.h"
#include "harness/model/param_count.h"
#include "harness/model/transformer.h"
#include "methods/method.h"
#include "tests/torch/hand_model.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

// d 4, f 8, V 10, 2 + 2 layers, E 2 (block 1 of each stack is MoE); B 1, S 3, T 2.
ModelConfig Hand() { return testing::HandModel(); }

TEST(ComputeModel, ForwardFlopsOfATinyModelByHand) {
  const ForwardFlops f = ModelForwardFlops(Hand(), 0, 2, 1, 3, 2);
  // Encoder layer: projections 4 * 2 * 3 * 16 = 384, scores + values 2 * 2 * 9 * 4 = 144.
  // Decoder layer: self 4 * 2 * 2 * 16 + 2 * 2 * 4 * 4 = 320; cross Q, O 2 * 2 * 2 * 16 = 128,
  // K, V 2 * 2 * 3 * 16 = 192, scores + values 2 * 2 * 2 * 3 * 4 = 96: 416.
  EXPECT_DOUBLE_EQ(f.attention, 2 * (384 + 144) + 2 * (320 + 416));  // 2528
  // Dense FFN in block 0: encoder 2 * 2 * 3 * 4 * 8 = 384, decoder 2 * 2 * 2 * 4 * 8 = 256.
  EXPECT_DOUBLE_EQ(f.ffn, 384 + 256);
  // Router in block 1: 2 * tokens * 4 * 2: encoder 48, decoder 32.
  EXPECT_DOUBLE_EQ(f.router, 48 + 32);
  EXPECT_DOUBLE_EQ(f.output, 2 * 2 * 4 * 10);  // 160
  EXPECT_DOUBLE_EQ(f.total(), 3408);
  // No router (THOR): the router term goes.
  EXPECT_DOUBLE_EQ(ModelForwardFlops(Hand(), 0, 0, 1, 3, 2).router, 0);
  // The dense baseline at total sizing (width E * f = 16) in the MoE blocks: encoder
  // 2 * 2 * 3 * 4 * 16 = 768, decoder 2 * 2 * 2 * 4 * 16 = 512, no router.
  const ForwardFlops wide = ModelForwardFlops(Hand(), 16, 0, 1, 3, 2);
  EXPECT_DOUBLE_EQ(wide.ffn, 640 + 768 + 512);
  EXPECT_DOUBLE_EQ(wide.router, 0);
  EXPECT_DOUBLE_EQ(ExpertForwardFlops(5, 4, 8), 2 * 2 * 5 * 4 * 8);
}

TEST(ComputeModel, ModeledTimesByHand) {
  const DeviceProfile& v100 = FindDeviceProfile("v100-32gb");
  EXPECT_DOUBLE_EQ(v100.peak_flops, 125e12);
  // The busiest worker: 3e12 FLOPs at 40% of 125 TFLOP/s = 0.06 s.
  EXPECT_DOUBLE_EQ(ModeledComputeSeconds({1e12, 3e12}, v100, 0.4), 0.06);
  EXPECT_NEAR(ModeledStepSeconds(0.06, 0.02, 0.0), 0.08, 1e-15);
  EXPECT_NEAR(ModeledStepSeconds(0.06, 0.02, 0.5), 0.07, 1e-15);
  EXPECT_NEAR(ModeledStepSeconds(0.06, 0.02, 1.0), 0.06, 1e-15);
  EXPECT_THROW(FindDeviceProfile("tpu"), std::invalid_argument);
  EXPECT_THROW(ModeledComputeSeconds({1.0}, v100, 0.0), std::invalid_argument);
  EXPECT_THROW(ModeledComputeSeconds({1.0}, v100, 1.5), std::invalid_argument);
  EXPECT_THROW(ModeledStepSeconds(1, 1, -0.1), std::invalid_argument);
}

// The modeled compute of one worker of experiments/paper_gating_dropout.toml (size base: d 512,
// f 2048, 6 + 6 layers; 16 experts, vocabulary 16000; 16 workers) against the usual
// 6 x active parameters x tokens estimate, by hand. One worker's share of a 16-worker step:
// 32 sentences of 32 source and 32 target tokens (1024 + 1024 tokens), top-1, nothing dropped.
TEST(ComputeModel, GatingDropoutBaseWorkerStepByHand) {
  ModelConfig cfg = SizePreset("base");
  cfg.num_experts = 16;
  cfg.vocab = 16000;
  const ForwardFlops f = ModelForwardFlops(cfg, 0, 16, 32, 32, 32);
  // Per encoder layer: projections 4 * 2 * 1024 * 512^2 = 2147483648, scores and values
  // 2 * 2 * 32 * 32^2 * 512 = 67108864; per decoder layer twice that (self + cross: Q, O on the
  // target and K, V on the source, S = T here).
  EXPECT_DOUBLE_EQ(f.attention, 6 * 2214592512.0 + 6 * 4429185024.0);  // 39862665216
  // Dense FFNs in blocks 0, 2, 4 of both stacks: 6 * 2 * 2 * 1024 * 512 * 2048.
  EXPECT_DOUBLE_EQ(f.ffn, 6 * 4294967296.0);
  EXPECT_DOUBLE_EQ(f.router, 6 * 2 * 1024 * 512 * 16.0);  // 100663296
  EXPECT_DOUBLE_EQ(f.output, 2 * 1024 * 512 * 16000.0);   // 16777216000
  // Every token through one expert in each of the 6 MoE blocks.
  const double experts = 6 * ExpertForwardFlops(1024, 512, 2048);  // 25769803776
  const double step = kTrainingFlopsPerForward * (f.total() + experts);
  // 6 N D: a source token passes the encoder's 6 x (4 d^2 + 2 d f) = 18874368 matrix
  // parameters, a target token the decoder's 6 x (8 d^2 + 2 d f) + d V = 33357824, so
  // 6 x 1024 x 52232192 = 320914587648; the model adds the attention's quadratic terms,
  // 3 x 18 x 67108864 = 3623878656, and the router's 3 x 100663296 = 301989888.
  EXPECT_DOUBLE_EQ(step, 320914587648.0 + 3623878656.0 + 301989888.0);  // 324840456192
  // At 40% of each profile's peak: 324840456192 / (125e12 * 0.4) = 6.49680912384 ms on the
  // V100, / 124.8e12 = 2.60288827... ms on the A100, / 395.6e12 = 0.821133610... ms on the H100.
  const std::vector<double> workers(16, step);
  EXPECT_NEAR(ModeledComputeSeconds(workers, FindDeviceProfile("v100-32gb"), 0.4), 6.49680912384e-3,
              1e-15);
  EXPECT_NEAR(ModeledComputeSeconds(workers, FindDeviceProfile("a100-80gb"), 0.4),
              324840456192.0 / 124.8e12, 1e-15);
  EXPECT_NEAR(ModeledComputeSeconds(workers, FindDeviceProfile("h100"), 0.4),
              324840456192.0 / 395.6e12, 1e-15);
  EXPECT_NEAR(324840456192.0 / 124.8e12, 2.60288827e-3, 1e-11);
  EXPECT_NEAR(324840456192.0 / 395.6e12, 8.21133610e-4, 1e-11);
}

// THOR's batch draw sends all 8 tokens of both workers to one expert: that expert's worker
// computes 8 rows (4 * d 8 * h 16 * 8 = 4096 forward FLOPs), the other none.
TEST(ComputeModel, ExpertFlopsAreCountedOnTheWorkerThatComputesThem) {
  LocalComm comm(Topology{2, 1});
  MoeLayer layer = testing::MakeMethodLayer("thor", &comm);
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 5;
  ctx.step = 1;
  layer->forward(at::randn({8, 8}), at::Tensor(), ctx);
  const std::vector<double>& f = layer->expert_flops_by_worker();
  ASSERT_EQ(f.size(), 2u);
  EXPECT_DOUBLE_EQ(f[0] + f[1], 4096);
  EXPECT_DOUBLE_EQ(std::max(f[0], f[1]), 4096);
  EXPECT_DOUBLE_EQ(layer->expert_flops(), 4096);
}

// With the batch's real lengths in the context (the trainer's), each sentence counts at its
// own lengths: pad positions add nothing. Two sentences padded to source 3 and target 2, real
// lengths (3, 2) and (1, 1). The second alone, by hand (the tiny model of the test above):
// encoder layer projections 4 * 2 * 1 * 16 = 128, scores + values 2 * 2 * 1 * 4 = 16; decoder
// layer self 128 + 16, cross Q, O 2 * 2 * 1 * 16 = 64, K, V 64, scores + values 16: attention
// 2 * 144 + 2 * 288 = 864; dense FFN 2 * 2 * 1 * 4 * 8 = 128 per side, 256; router 2 * 1 * 4 * 2
// = 16 per side, 32; output 2 * 1 * 4 * 10 = 80: 1232. The first is the 3408 above.
TEST(ComputeModel, ABatchCountsEachSentenceAtItsRealLengths) {
  LocalComm comm(Topology{1, 1});
  std::unique_ptr<Method> sw = MakeMethod("switch", {});
  at::manual_seed(1);
  Transformer model(Hand(), sw.get(), &comm);
  const at::Tensor src = at::tensor({4, 5, 6, 7, 0, 0}, at::kLong).view({2, 3});
  const at::Tensor tgt = at::tensor({1, 8, 1, 0}, at::kLong).view({2, 2});
  RouteContext ctx;
  ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(std::vector<int64_t>{3, 1});
  ctx.tgt_lengths = std::make_shared<const std::vector<int64_t>>(std::vector<int64_t>{2, 1});
  model->forward(src, tgt, ctx);
  EXPECT_DOUBLE_EQ(model->nonexpert_forward_flops(), 3408 + 1232);
  EXPECT_DOUBLE_EQ(model->NonexpertForwardFlops({1}, {1}), 1232);
  // The same as the two sentences forwarded one by one, unpadded, without lengths.
  Transformer alone(Hand(), sw.get(), &comm);
  alone->forward(src.narrow(0, 0, 1), tgt.narrow(0, 0, 1), RouteContext{});
  alone->forward(src.narrow(0, 1, 1).narrow(1, 0, 1), tgt.narrow(0, 1, 1).narrow(1, 0, 1),
                 RouteContext{});
  EXPECT_DOUBLE_EQ(alone->nonexpert_forward_flops(), model->nonexpert_forward_flops());
  // Without the lengths the padded shape counts: 2 x 3408.
  Transformer padded(Hand(), sw.get(), &comm);
  padded->forward(src, tgt, RouteContext{});
  EXPECT_DOUBLE_EQ(padded->nonexpert_forward_flops(), 2 * 3408);
  // Lengths of another batch (a count that does not match) are not used.
  ctx.tgt_lengths = std::make_shared<const std::vector<int64_t>>(std::vector<int64_t>{2});
  padded->forward(src, tgt, ctx);
  EXPECT_DOUBLE_EQ(padded->nonexpert_forward_flops(), 4 * 3408);
  EXPECT_THROW(model->NonexpertForwardFlops({1, 2}, {1}), std::invalid_argument);
}

// The model counts its non-expert forward FLOPs as the formula gives for its batch shape, and
// the dense baseline has no MoE layer, with the parameter counts its sizings promise.
TEST(ComputeModel, ModelCountsItsForwardsAndDenseSizingsMatchTheirTargets) {
  LocalComm comm(Topology{1, 1});
  ModelConfig cfg = Hand();
  std::unique_ptr<Method> sw = MakeMethod("switch", {});
  at::manual_seed(1);
  Transformer model(cfg, sw.get(), &comm);
  const at::Tensor src = at::randint(1, 10, {1, 3}, at::kLong);
  const at::Tensor tgt = at::randint(1, 10, {1, 2}, at::kLong);
  model->forward(src, tgt, RouteContext{});
  EXPECT_DOUBLE_EQ(model->nonexpert_forward_flops(), 3408);
  model->forward(src, tgt, RouteContext{});
  EXPECT_DOUBLE_EQ(model->nonexpert_forward_flops(), 2 * 3408);

  for (const std::string sizing : {"active", "total"}) {
    std::unique_ptr<Method> dense = MakeMethod("dense", {{"sizing", sizing}});
    Transformer d(cfg, dense.get(), &comm);
    EXPECT_TRUE(d->MoeLayers().empty());
    d->forward(src, tgt, RouteContext{});
    EXPECT_DOUBLE_EQ(d->nonexpert_forward_flops(),
                     ModelForwardFlops(cfg, sizing == "total" ? 16 : 8, 0, 1, 3, 2).total());
  }
  // Parameters: an FFN of width w has 2 d w + w + d. Switch's MoE block: router d E = 8 plus
  // E experts of width f (2 * 76 = 152); dense total: one FFN of width 16 (148); dense active:
  // width 8 (76). Active parameters of dense active equal switch's active less its routers.
  const ParamCounts s = CountModelParams(cfg, "switch");
  std::unique_ptr<Method> dt = MakeMethod("dense", {{"sizing", "total"}});
  std::unique_ptr<Method> da = MakeMethod("dense", {{"sizing", "active"}});
  Transformer mt(cfg, dt.get(), &comm), ma(cfg, da.get(), &comm);
  const ParamCounts ct = mt->CountParams(1), ca = ma->CountParams(1);
  Transformer ms(cfg, sw.get(), &comm);
  const ParamCounts cs = ms->CountParams(1);
  // Two MoE blocks (one per stack): switch - dense total = 2 * (8 + 152 - 148) = 24.
  EXPECT_EQ(cs.total - ct.total, 24);
  // switch active - dense active = 2 * router (8) = 16.
  EXPECT_EQ(cs.active - ca.active, 16);
  EXPECT_EQ(ca.total, ca.active);
  EXPECT_EQ(s.total, cs.total);
  // The analytic count (`moebench sizes`) agrees with the built model (default sizing: active).
  const ParamCounts analytic = CountModelParams(cfg, "dense");
  EXPECT_EQ(analytic.total, ca.total);
  EXPECT_EQ(analytic.active, ca.active);
}

}  // namespace
}  // namespace moebench
