#include "harness/model/param_count.h"

#include "methods/method.h"

namespace moebench {

ParamCounts CountModelParams(const ModelConfig& cfg, const std::string& method_name) {
  const int64_t d = cfg.d_model;
  const int64_t layer_norm = 2 * d;
  const int64_t attention = 4 * (d * d + d);
  const int64_t dense_ffn = d * cfg.d_ff + cfg.d_ff + cfg.d_ff * d + d;
  std::unique_ptr<Method> method = MakeMethod(method_name, {});
  const int64_t dense_width = method->DenseWidth(cfg.d_ff, cfg.num_experts);
  int64_t per_expert = 0, router = 0, active_experts = 0;
  if (dense_width == 0) {
    const int64_t hidden = method->ExpertHidden(cfg.d_ff, cfg.num_experts);
    per_expert = 2 * d * hidden + hidden + d;
    for (const auto& p :
         method->MakeRouter({0, false, d, cfg.d_ff, cfg.num_experts})->parameters()) {
      router += p.numel();
    }
    active_experts = std::min<int64_t>(method->ActiveExperts(), cfg.num_experts);
  }
  // The dense baseline's FFN where the MoE layers would be (methods/dense.h).
  const int64_t wide_ffn = d * dense_width + dense_width + dense_width * d + d;

  ParamCounts c;
  c.total = cfg.vocab * d + 2 * layer_norm;  // shared embedding, final norms
  c.active = c.total;
  auto add_block = [&](int64_t block, bool decoder) {
    int64_t common = 2 * layer_norm + attention;
    if (decoder) common += layer_norm + attention;
    c.total += common;
    c.active += common;
    if (cfg.IsMoeBlock(block) && dense_width > 0) {
      c.total += wide_ffn;
      c.active += wide_ffn;
    } else if (cfg.IsMoeBlock(block)) {
      c.total += router + cfg.num_experts * per_expert;
      c.active += router + active_experts * per_expert;
    } else {
      c.total += dense_ffn;
      c.active += dense_ffn;
    }
  };
  for (int64_t i = 0; i < cfg.encoder_layers; ++i) add_block(i, false);
  for (int64_t i = 0; i < cfg.decoder_layers; ++i) add_block(i, true);
  return c;
}

}  // namespace moebench
