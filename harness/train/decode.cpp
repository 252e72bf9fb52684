#include "harness/train/decode.h"

#include <algorithm>
#include <cmath>
#include <limits>

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
  at::Tensor tokens = at::full({b}, opt.bos_id, src.options().dtype(at::kLong));
  std::vector<std::vector<int>> out(b);
  std::vector<bool> done(b, false);
  int64_t remaining = b;
  for (int64_t step = 0; step < max_len && remaining > 0; ++step) {
    at::Tensor next = model->DecodeStep(state, tokens, ctx).argmax(-1);
    const at::Tensor next_host = next.to(at::kCPU).contiguous();  // one sync per step
    const int64_t* n = next_host.data_ptr<int64_t>();
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

namespace {

struct Finished {
  double score = -std::numeric_limits<double>::infinity();
  std::vector<int> tokens;
};

void ReorderCache(std::vector<KvCache>& caches, const at::Tensor& rows) {
  for (auto& c : caches) {
    if (!c.k.defined()) continue;
    c.k = c.k.index_select(0, rows);
    c.v = c.v.index_select(0, rows);
  }
}

}  // namespace

std::vector<std::vector<int>> BeamDecode(Transformer& model, const at::Tensor& src,
                                         const DecodeOptions& opt, RouteContext ctx) {
  at::NoGradGuard no_grad;
  ctx.training = false;
  ctx.incremental = true;
  ctx.beam = opt.beam;
  const int64_t b = src.size(0);
  const int64_t k = opt.beam;
  const int64_t max_len =
      static_cast<int64_t>(opt.max_len_a * static_cast<double>(src.size(1))) + opt.max_len_b;
  DecoderState state = model->Encode(src, ctx);
  const at::Device device = src.device();
  const at::Tensor expand = at::arange(b, src.options().dtype(at::kLong)).repeat_interleave(k);
  state.memory = state.memory.index_select(0, expand);
  state.src_pad = state.src_pad.index_select(0, expand);

  const double neg_inf = -std::numeric_limits<double>::infinity();
  std::vector<double> scores(b * k, neg_inf);
  for (int64_t i = 0; i < b; ++i) scores[i * k] = 0.0;  // one live beam to start
  std::vector<std::vector<int>> hyps(b * k);
  std::vector<std::vector<Finished>> finished(b);
  std::vector<bool> done(b, false);
  at::Tensor tokens = at::full({b * k}, opt.bos_id, src.options().dtype(at::kLong));
  auto norm = [&](double score, size_t len) {
    return score / std::pow(static_cast<double>(len + 1), opt.length_penalty);
  };
  for (int64_t step = 0; step < max_len; ++step) {
    const at::Tensor logp = model->DecodeStep(state, tokens, ctx).to(at::kDouble);  // [B*K, V]
    const int64_t v = logp.size(1);
    const at::Tensor score_t = at::tensor(scores, at::kDouble).to(device);
    const at::Tensor total = (logp + score_t.unsqueeze(1)).view({b, k * v});
    auto [best_d, idx_d] = total.topk(std::min<int64_t>(2 * k, k * v), 1);
    // Read on the host (one sync per step).
    const at::Tensor best = best_d.to(at::kCPU).contiguous();
    const at::Tensor idx = idx_d.to(at::kCPU).contiguous();
    const double* best_p = best.data_ptr<double>();
    const int64_t* idx_p = idx.data_ptr<int64_t>();
    const int64_t width = best.size(1);
    std::vector<int64_t> origin(b * k, 0);
    std::vector<int64_t> next_token(b * k, opt.eos_id);
    std::vector<double> next_score(b * k, neg_inf);
    std::vector<std::vector<int>> next_hyps(b * k);
    const bool last = step + 1 == max_len;
    for (int64_t i = 0; i < b; ++i) {
      int64_t live = 0;
      for (int64_t c = 0; c < width && !done[i] && live < k; ++c) {
        const double sc = best_p[i * width + c];
        if (sc == neg_inf) break;
        const int64_t row = i * k + idx_p[i * width + c] / v;
        const int64_t tok = idx_p[i * width + c] % v;
        if (tok == opt.eos_id || last) {
          std::vector<int> h = hyps[row];
          if (tok != opt.eos_id) h.push_back(static_cast<int>(tok));
          finished[i].push_back({norm(sc, h.size()), h});
          if (static_cast<int64_t>(finished[i].size()) >= k) done[i] = true;
          continue;
        }
        const int64_t slot = i * k + live++;
        origin[slot] = row;
        next_token[slot] = tok;
        next_score[slot] = sc;
        next_hyps[slot] = hyps[row];
        next_hyps[slot].push_back(static_cast<int>(tok));
      }
      if (done[i]) {
        for (int64_t j = 0; j < k; ++j) next_score[i * k + j] = neg_inf;
      }
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    const at::Tensor rows = at::tensor(origin, at::kLong).to(device);
    ReorderCache(state.self_cache, rows);
    ReorderCache(state.cross_cache, rows);
    scores = next_score;
    hyps = next_hyps;
    tokens = at::tensor(next_token, at::kLong).to(device);
  }
  std::vector<std::vector<int>> out(b);
  for (int64_t i = 0; i < b; ++i) {
    const auto best =
        std::max_element(finished[i].begin(), finished[i].end(),
                         [](const Finished& a, const Finished& c) { return a.score < c.score; });
    if (best != finished[i].end()) out[i] = best->tokens;
  }
  return out;
}

std::vector<std::vector<int>> Decode(Transformer& model, const at::Tensor& src,
                                     const DecodeOptions& opt, const RouteContext& ctx) {
  if (opt.beam <= 1) return GreedyDecode(model, src, opt, ctx);
  return BeamDecode(model, src, opt, ctx);
}

}  // namespace moebench
