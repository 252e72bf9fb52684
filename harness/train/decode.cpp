#include "harness/train/decode.h"

namespace moebench {

std::vector<std::vector<int>> GreedyDecode(Transformer& model, const at::Tensor& src,
                                           const DecodeOptions& opt, RouteContext ctx) {
  at::NoGradGuard no_grad;
  ctx.training = false;
  ctx.incremental = true;
  const int64_t b = src.size(0);
  const int64_t max_len =
      static_cast<int64_t>(opt.max_len_a * static_cast<double>(src.size(1))) + opt.max_len_b;
  DecoderState state = model->Encode(src, ctx);
  at::Tensor tokens = at::full({b}, opt.bos_id, at::kLong);
  std::vector<std::vector<int>> out(b);
  std::vector<bool> done(b, false);
  int64_t remaining = b;
  for (int64_t step = 0; step < max_len && remaining > 0; ++step) {
    at::Tensor next = model->DecodeStep(state, tokens, ctx).argmax(-1);
    const int64_t* n = next.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      if (done[i]) continue;
      if (n[i] == opt.eos_id) {
        done[i] = true;
        --remaining;
      } else {
        out[i].push_back(static_cast<int>(n[i]));
      }
    }
    tokens = next;
  }
  return out;
}

}  // namespace moebench
