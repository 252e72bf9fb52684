#include "harness/model/attention.h"

#include <cmath>
#include <limits>

namespace moebench {

namespace {

// The most negative finite value of scores of type `t`. Masked scores get it rather than -inf:
// a row whose every key is masked (an all-pad sentence, which a graph step's padded batch has:
// Note [Training step graphs] in harness/train/step_graphs.cpp) then attends uniformly, finite,
// where -inf gave NaN (0/0), which a backward would spread to every weight; a row with a real
// key is unchanged, since exp(lowest - max) underflows to exactly 0 as exp(-inf) does.
double LowestScore(at::ScalarType t) {
  switch (t) {
    case at::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kHalf:
      return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    default:
      return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

}  // namespace

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t d_model, int64_t heads)
    : heads_(heads), d_head_(d_model / heads) {
  q_ = register_module("q", torch::nn::Linear(d_model, d_model));
  k_ = register_module("k", torch::nn::Linear(d_model, d_model));
  v_ = register_module("v", torch::nn::Linear(d_model, d_model));
  o_ = register_module("o", torch::nn::Linear(d_model, d_model));
}

at::Tensor MultiheadAttentionImpl::Split(const at::Tensor& x) const {
  return x.view({x.size(0), x.size(1), heads_, d_head_}).transpose(1, 2);
}

at::Tensor MultiheadAttentionImpl::forward(const at::Tensor& q_in, const at::Tensor& kv_in,
                                           const at::Tensor& key_pad, bool causal, KvCache* cache,
                                           bool static_kv) {
  const int64_t b = q_in.size(0);
  const int64_t lq = q_in.size(1);
  at::Tensor q = Split(q_->forward(q_in)) / std::sqrt(static_cast<double>(d_head_));
  at::Tensor k, v;
  if (cache && static_kv && cache->k.defined()) {
    k = cache->k;
    v = cache->v;
  } else {
    k = Split(k_->forward(kv_in));
    v = Split(v_->forward(kv_in));
    if (cache && !static_kv && cache->k.defined()) {
      k = at::cat({cache->k, k}, 2);
      v = at::cat({cache->v, v}, 2);
    }
    if (cache) {
      cache->k = k;
      cache->v = v;
    }
  }
  const int64_t lk = k.size(2);
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1));  // [B, H, Lq, Lk]
  const double masked = LowestScore(scores.scalar_type());
  if (key_pad.defined()) {
    scores = scores.masked_fill(key_pad.view({b, 1, 1, lk}), masked);
  }
  if (causal && lq > 1) {
    at::Tensor future = at::ones({lq, lk}, scores.options().dtype(at::kBool)).triu(lk - lq + 1);
    scores = scores.masked_fill(future, masked);
  }
  at::Tensor attn = at::softmax(scores, -1);
  at::Tensor out = at::matmul(attn, v).transpose(1, 2).reshape({b, lq, heads_ * d_head_});
  return o_->forward(out);
}

}  // namespace moebench
