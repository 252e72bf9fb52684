// Beam search and multilingual sampling.
#include <gtest/gtest.h>

#include <map>

#include "harness/comm/local_comm.h"
#include "harness/model/transformer.h"
#include "harness/train/data_pipeline.h"
#include "harness/train/decode.h"
#include "methods/method.h"

namespace moebench {
namespace {

struct TinyModel {
  LocalComm comm{Topology{1, 1}};
  std::unique_ptr<Method> method = MakeMethod("switch", {{"eval_capacity_factor", "100"}});
  Transformer model{nullptr};
  explicit TinyModel(uint64_t seed) {
    at::manual_seed(seed);
    ModelConfig cfg = SizePreset("tiny");
    cfg.vocab = 20;
    cfg.dropout = 0;
    model = Transformer(cfg, method.get(), &comm);
    model->eval();
  }
};

// Sum of log-probabilities the model gives a continuation (with eos at the end).
double SequenceLogProb(Transformer& model, const at::Tensor& src, const std::vector<int>& tokens,
                       int64_t bos, int64_t eos) {
  at::NoGradGuard no_grad;
  RouteContext ctx;
  ctx.incremental = true;
  DecoderState state = model->Encode(src, ctx);
  at::Tensor tok = at::full({1}, bos, at::kLong);
  double total = 0;
  std::vector<int> seq = tokens;
  seq.push_back(static_cast<int>(eos));
  for (int t : seq) {
    const at::Tensor logp = model->DecodeStep(state, tok, ctx);
    total += logp[0][t].item<double>();
    tok = at::full({1}, t, at::kLong);
  }
  return total;
}

// Decoding is incremental in the decoder only: the encoder routes its whole sentences with the
// evaluation capacity, as the validation forward does. Switch, E = 4, eval capacity factor 2,
// one 16-token source: capacity max(4, ceil(2 * 16 / 4)) = 8, not the 16 (cannot drop) that an
// incremental decoder step uses.
TEST(Decode, EncoderRoutesWithTheEvaluationCapacityDuringDecoding) {
  LocalComm comm{Topology{1, 1}};
  std::unique_ptr<Method> method = MakeMethod("switch", {});
  at::manual_seed(4);
  ModelConfig cfg = SizePreset("tiny");
  cfg.vocab = 20;
  cfg.dropout = 0;
  ASSERT_EQ(cfg.num_experts, 4);
  Transformer model(cfg, method.get(), &comm);
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor src = at::randint(4, 20, {1, 16}, at::kLong);
  RouteContext ctx;
  ctx.incremental = true;
  DecoderState state = model->Encode(src, ctx);
  int encoder_layers = 0;
  for (const auto& layer : model->MoeLayers()) {
    if (layer->options().decoder) continue;
    ++encoder_layers;
    EXPECT_EQ(layer->last_assignments().capacity, 8) << "layer " << layer->options().index;
  }
  EXPECT_GT(encoder_layers, 0);
  // The memory is the one a non-incremental encoding gives.
  RouteContext full;
  EXPECT_TRUE(at::equal(model->Encode(src, full).memory, state.memory));
}

TEST(Decode, BeamOfOneEqualsGreedyAndWiderBeamsScoreAtLeastAsWell) {
  for (uint64_t seed : {1, 2, 3}) {
    TinyModel m(seed);
    const at::Tensor src = at::tensor({5, 6, 7, 3}, at::kLong).view({1, 4});
    DecodeOptions opt;
    opt.max_len_a = 0;
    opt.max_len_b = 6;
    opt.length_penalty = 0;  // raw log-probability, so scores compare directly
    RouteContext ctx;
    const auto greedy = GreedyDecode(m.model, src, opt, ctx);
    opt.beam = 1;
    EXPECT_EQ(Decode(m.model, src, opt, ctx), greedy);
    opt.beam = 4;
    const auto beam = BeamDecode(m.model, src, opt, ctx);
    // A greedy hypothesis that stopped before max length is one of the beam's candidates.
    if (greedy[0].size() < 6) {
      EXPECT_GE(SequenceLogProb(m.model, src, beam[0], 2, 3),
                SequenceLogProb(m.model, src, greedy[0], 2, 3) - 1e-6)
          << "seed " << seed;
    }
  }
}

TEST(Decode, BatchedBeamSearchEqualsOneSentenceAtATime) {
  TinyModel m(4);
  const at::Tensor src = at::tensor({5, 6, 7, 3, 8, 9, 3, 0}, at::kLong).view({2, 4});
  DecodeOptions opt;
  opt.beam = 3;
  RouteContext ctx;
  const auto both = BeamDecode(m.model, src, opt, ctx);
  // Each sentence alone (same padded length, so the same length limit) gives the same output.
  const auto second = BeamDecode(m.model, src.slice(0, 1, 2), opt, ctx);
  const auto first = BeamDecode(m.model, src.slice(0, 0, 1), opt, ctx);
  EXPECT_EQ(both[0], first[0]);
  EXPECT_EQ(both[1], second[0]);
}

TEST(Sampling, TemperatureOneKeepsProportionsAndLargeTemperatureEqualises) {
  std::vector<EncodedExample> ex;
  for (int i = 0; i < 900; ++i) ex.push_back({{i}, {i}, i < 800 ? 0 : 1});  // 800 vs 100
  EXPECT_EQ(ResampleByLanguage(ex, 2, 1.0, 7).size(), 900u);
  auto count = [](const std::vector<EncodedExample>& v) {
    std::map<int, int> c;
    for (const auto& e : v) c[e.lang]++;
    return c;
  };
  // T = 5: shares (8/9)^0.2 : (1/9)^0.2 = 0.9767 : 0.6444 -> 542 and 358 of 900.
  auto c5 = count(ResampleByLanguage(ex, 2, 5.0, 7));
  EXPECT_EQ(c5[0], 542);
  EXPECT_EQ(c5[1], 358);
  auto c_inf = count(ResampleByLanguage(ex, 2, 1e9, 7));
  EXPECT_EQ(c_inf[0], 450);
  EXPECT_EQ(c_inf[1], 450);
  // Up-sampled language: every example appears before any repeats.
  auto up = ResampleByLanguage(ex, 2, 1e9, 7);
  std::map<int, int> seen;
  for (const auto& e : up) {
    if (e.lang == 1) seen[e.src[0]]++;
  }
  for (const auto& [id, n] : seen) EXPECT_GE(n, 4);
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace moebench
