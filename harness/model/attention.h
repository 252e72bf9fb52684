// Multi-head attention with an optional key/value cache for incremental decoding.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace moebench {

struct KvCache {
  at::Tensor k, v;  // [B, H, t, dh]
};

class MultiheadAttentionImpl : public torch::nn::Module {
 public:
  MultiheadAttentionImpl(int64_t d_model, int64_t heads);
  // q_in [B, Lq, d], kv_in [B, Lk, d]; key_pad [B, Lk] bool, true = padding (may be undefined).
  // causal: query i sees keys <= i + (Lk - Lq). cache: self-attention appends this step's K/V;
  // cross-attention (static_kv) computes K/V once and reuses them.
  at::Tensor forward(const at::Tensor& q_in, const at::Tensor& kv_in, const at::Tensor& key_pad,
                     bool causal, KvCache* cache = nullptr, bool static_kv = false);

 private:
  at::Tensor Split(const at::Tensor& x) const;  // [B, L, d] -> [B, H, L, dh]
  int64_t heads_, d_head_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, o_{nullptr};
};
TORCH_MODULE(MultiheadAttention);

}  // namespace moebench
