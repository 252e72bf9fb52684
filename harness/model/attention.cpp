#include "harness/model/attention.h"

#include <cmath>
#include <limits>

namespace moebench {

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
  const double neg_inf = -std::numeric_limits<float>::infinity();
  if (key_pad.defined()) {
    scores = scores.masked_fill(key_pad.view({b, 1, 1, lk}), neg_inf);
  }
  if (causal && lq > 1) {
    at::Tensor future = at::ones({lq, lk}, scores.options().dtype(at::kBool)).triu(lk - lq + 1);
    scores = scores.masked_fill(future, neg_inf);
  }
  at::Tensor attn = at::softmax(scores, -1);
  at::Tensor out = at::matmul(attn, v).transpose(1, 2).reshape({b, lq, heads_ * d_head_});
  return o_->forward(out);
}

}  // namespace moebench
