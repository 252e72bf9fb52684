#include "harness/model/param_count.h"

#include "harness/model/expert_layout.h"
#include "methods/method.h"

namespace moebench {

ParamCounts CountModelParams(const ModelConfig& cfg, const std::string& method_name,
                             const std::map<std::string, std::string>& knobs) {
  const int64_t d = cfg.d_model;
  const int64_t layer_norm = 2 * d;
  const int64_t attention = 4 * (d * d + d);
  const int64_t dense_ffn = d * cfg.d_ff + cfg.d_ff + cfg.d_ff * d + d;
  std::unique_ptr<Method> method = MakeMethod(method_name, knobs);
  const int64_t dense_width = method->DenseWidth(cfg.d_ff, cfg.num_experts);
  int64_t per_expert = 0, router = 0, active_experts = 0, routed = 0, shared = 0;
  if (dense_width == 0) {
    const ExpertLayout layout = MoeExpertLayout(cfg, *method);
    per_expert = 2 * d * layout.hidden + layout.hidden + d;
    LayerSpec spec{
        0,        false,         d,
        cfg.d_ff, layout.routed, layout.modified && method->RoutesAnyK() ? layout.top_k : 0};
    for (const auto& p : method->MakeRouter(spec)->parameters()) router += p.numel();
    active_experts = layout.top_k;
    routed = layout.routed;
    // The shared experts: one FFN of width K_s * hidden, active for every token.
    if (layout.shared_hidden > 0) shared = 2 * d * layout.shared_hidden + layout.shared_hidden + d;
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
      c.total += router + routed * per_expert + shared;
      c.active += router + active_experts * per_expert + shared;
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
