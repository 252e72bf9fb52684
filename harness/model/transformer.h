// Encoder-decoder Transformer for translation: pre-LayerNorm, sinusoidal positions, one
// embedding shared by source, target and the output projection, and a pluggable FFN
// sublayer (dense, or an MoE layer in every other block; docs/METHODS.md section 0).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "harness/comm/comm.h"
#include "harness/model/attention.h"
#include "harness/model/block_dropout.h"
#include "harness/model/sizes.h"
#include "harness/moe/moe_layer.h"
#include "methods/method.h"

namespace moebench {

// Either a dense FFN (of width `width`) or an MoE layer.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(const ModelConfig& cfg, bool use_moe, int moe_index, bool decoder, Method* method,
                  Comm* comm, const std::string& exchange, bool static_shapes, int64_t width);
  // x [B, L, d], pad [B, L] bool (true = real token)
  at::Tensor forward(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx);
  MoeLayer moe{nullptr};

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(FeedForward);

struct DecoderState {
  at::Tensor memory;   // [B, S, d]
  at::Tensor src_pad;  // [B, S] bool, true = padding
  std::vector<KvCache> self_cache, cross_cache;
  int64_t position = 0;
};

struct ParamCounts {
  int64_t total = 0;
  int64_t active = 0;  // parameters a single token touches (k experts per MoE layer)
};

class TransformerImpl : public torch::nn::Module {
 public:
  // exchange: the all-to-all format; static_shapes: the MoE layers' static-shape training path
  // (MoeLayerOptions).
  TransformerImpl(ModelConfig cfg, Method* method, Comm* comm,
                  const std::string& exchange = "padded", bool static_shapes = false);

  // src [B, S], tgt_in [B, L] (int64, pad id 0) -> logits [B, L, V].
  at::Tensor forward(const at::Tensor& src, const at::Tensor& tgt_in, const RouteContext& ctx);
  DecoderState Encode(const at::Tensor& src, const RouteContext& ctx);
  // One decoding step: tokens [B] -> log-probabilities [B, V].
  at::Tensor DecodeStep(DecoderState& state, const at::Tensor& tokens, const RouteContext& ctx);

  // Sum of the MoE layers' weighted auxiliary losses from the last forward.
  at::Tensor AuxLoss() const;
  std::vector<MoeLayer> MoeLayers() const;
  // active_experts_per_token: routed experts a token activates (ExpertLayout::top_k); shared
  // experts count as active.
  ParamCounts CountParams(int64_t active_experts_per_token) const;
  const ModelConfig& config() const { return cfg_; }
  int64_t pad_id() const { return 0; }
  // FLOP counters (Note [Compute model] in harness/model/compute_model.h), cumulative over
  // every forward() (decoding steps are not counted): the non-expert forward FLOPs, and the
  // experts' forward FLOPs by worker summed over the MoE layers.
  double nonexpert_forward_flops() const { return nonexpert_flops_; }
  // The non-expert forward FLOPs of one forward of `batch` sentences of these padded lengths
  // (what forward() adds to nonexpert_forward_flops() when the context has no lengths).
  double NonexpertForwardFlops(int64_t batch, int64_t src_len, int64_t tgt_len) const;
  // The same for sentences of these real lengths (source, target input), each at its own
  // length: what forward() adds when the context has them (Note [Compute model]).
  double NonexpertForwardFlops(const std::vector<int64_t>& src_lengths,
                               const std::vector<int64_t>& tgt_lengths) const;
  std::vector<double> expert_forward_flops_by_worker() const;

 private:
  struct Block {
    torch::nn::LayerNorm ln_self{nullptr}, ln_cross{nullptr}, ln_ffn{nullptr};
    MultiheadAttention self_attn{nullptr}, cross_attn{nullptr};
    FeedForward ffn{nullptr};
  };
  at::Tensor Embed(const at::Tensor& tokens, int64_t offset, const RouteContext& ctx, int site);
  // Dropout at `site` (Note [Dropout masks]); x itself outside training.
  at::Tensor Dropout(const at::Tensor& x, const RouteContext& ctx, int site) const;
  at::Tensor RunDecoder(at::Tensor y, const at::Tensor& tgt_real, const DecoderState& enc,
                        const RouteContext& ctx, bool incremental, DecoderState* state);

  ModelConfig cfg_;
  at::Tensor embedding_;  // [V, d], shared and tied with the output projection
  at::Tensor positions_;  // [max_positions, d] sinusoidal, not a parameter
  std::vector<Block> encoder_, decoder_;
  torch::nn::LayerNorm enc_norm_{nullptr}, dec_norm_{nullptr};
  WorkerBlocks blocks_;          // the worker blocks of each batch this process holds
  int64_t moe_dense_width_ = 0;  // the dense baseline's FFN width in the MoE blocks
  int64_t router_experts_ = 0;   // router logits per token in MoE blocks (0: no router)
  double nonexpert_flops_ = 0;
};
TORCH_MODULE(Transformer);

// Label-smoothed cross entropy (fairseq's form) summed over non-pad targets, and the plain
// NLL sum. logits [B, L, V], target [B, L].
std::pair<at::Tensor, at::Tensor> LabelSmoothedCrossEntropy(const at::Tensor& logits,
                                                            const at::Tensor& target,
                                                            double epsilon, int64_t pad_id);
// The same per sentence: two [B] tensors of sums over each row's non-pad targets.
std::pair<at::Tensor, at::Tensor> LabelSmoothedCrossEntropyRows(const at::Tensor& logits,
                                                                const at::Tensor& target,
                                                                double epsilon, int64_t pad_id);

}  // namespace moebench
