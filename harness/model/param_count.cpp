#include "harness/model/param_count.h"

#include "methods/method.h"

namespace moebench {

ParamCounts CountModelParams(const ModelConfig& cfg, const std::string& method_name) {
  const int64_t d = cfg.d_model;
  const int64_t layer_norm = 2 * d;
  const int64_t attention = 4 * (d * d + d);
  const int64_t dense_ffn = d * cfg.d_ff + cfg.d_ff + cfg.d_ff * d + d;
  std::unique_ptr<Method> method = MakeMethod(method_name, {});
  const int64_t hidden = method->ExpertHidden(cfg.d_ff, cfg.num_experts);
  const int64_t per_expert = 2 * d * hidden + hidden + d;
  int64_t router = 0;
  for (const auto& p : method->MakeRouter({0, false, d, cfg.d_ff, cfg.num_experts})->parameters()) {
    router += p.numel();
  }
  const int64_t active_experts = std::min<int64_t>(method->ActiveExperts(), cfg.num_experts);

  ParamCounts c;
  c.total = cfg.vocab * d + 2 * layer_norm;  // shared embedding, final norms
  c.active = c.total;
  auto add_block = [&](int64_t block, bool decoder) {
    int64_t common = 2 * layer_norm + attention;
    if (decoder) common += layer_norm + attention;
    c.total += common;
    c.active += common;
    if (cfg.IsMoeBlock(block)) {
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
