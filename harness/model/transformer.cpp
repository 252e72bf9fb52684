#include "harness/model/transformer.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "harness/model/compute_model.h"
#include "harness/model/expert_layout.h"

namespace moebench {

namespace {
at::Tensor SinusoidalPositions(int64_t n, int64_t d) {
  at::Tensor pos = at::arange(n, at::kFloat).unsqueeze(1);
  at::Tensor i = at::arange(0, d, 2, at::kFloat);
  at::Tensor freq = at::exp(i * (-std::log(10000.0) / static_cast<double>(d)));
  at::Tensor table = at::zeros({n, d});
  table.slice(1, 0, d, 2).copy_(at::sin(pos * freq));
  table.slice(1, 1, d, 2).copy_(at::cos(pos * freq).slice(1, 0, d / 2));
  return table;
}

// Dropout sites (Note [Dropout masks]): the embedding is sublayer -1 of block 0; block i's
// sublayers are self-attention 0, cross-attention 1 (decoder) and FFN 2.
int Site(bool decoder, size_t block, int sublayer) {
  return (decoder ? 1 << 20 : 0) + static_cast<int>(block) * 4 + sublayer + 1;
}
}  // namespace

FeedForwardImpl::FeedForwardImpl(const ModelConfig& cfg, bool use_moe, int moe_index, bool decoder,
                                 Method* method, Comm* comm, const std::string& exchange,
                                 bool static_shapes, int64_t width) {
  if (use_moe) {
    const ExpertLayout layout = MoeExpertLayout(cfg, *method);
    LayerSpec spec{moe_index, decoder, cfg.d_model, cfg.d_ff, layout.routed, cfg.vocab};
    spec.top_k = layout.modified && method->RoutesAnyK() ? layout.top_k : 0;
    MoeLayerOptions opt;
    opt.index = moe_index;
    opt.decoder = decoder;
    opt.d_model = cfg.d_model;
    opt.d_hidden = layout.hidden;
    opt.num_experts = layout.routed;
    opt.shared_hidden = layout.shared_hidden;
    opt.exchange = exchange;
    opt.static_shapes = static_shapes;
    moe = register_module("moe", MoeLayer(opt, method->MakeRouter(spec), comm));
  } else {
    fc1_ = register_module("fc1", torch::nn::Linear(cfg.d_model, width));
    fc2_ = register_module("fc2", torch::nn::Linear(width, cfg.d_model));
  }
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x, const at::Tensor& pad,
                                    const RouteContext& ctx) {
  if (!moe) return fc2_->forward(at::relu(fc1_->forward(x)));
  const int64_t d = x.size(-1);
  at::Tensor flat = x.reshape({-1, d});
  RouteContext c = ctx;
  c.total_tokens = flat.size(0);
  c.tokens_per_sentence = x.size(1);
  at::Tensor y = moe->forward(flat, pad.defined() ? pad.reshape({-1}) : at::Tensor(), c);
  return y.view(x.sizes());
}

TransformerImpl::TransformerImpl(ModelConfig cfg, Method* method, Comm* comm,
                                 const std::string& exchange, bool static_shapes)
    : cfg_(std::move(cfg)) {
  if (cfg_.vocab <= 0) throw std::invalid_argument("Transformer: vocab size not set");
  if (cfg_.d_model % cfg_.heads != 0) {
    throw std::invalid_argument("Transformer: d_model must be divisible by heads");
  }
  embedding_ = register_parameter(
      "embedding", at::randn({cfg_.vocab, cfg_.d_model}) * std::pow(cfg_.d_model, -0.5));
  positions_ = register_buffer("positions", SinusoidalPositions(cfg_.max_positions, cfg_.d_model));
  int moe_index = 0;
  auto make_blocks = [&](int64_t n, bool decoder, std::vector<Block>& blocks) {
    const std::string prefix = decoder ? "dec" : "enc";
    for (int64_t i = 0; i < n; ++i) {
      Block b;
      const std::string name = prefix + std::to_string(i);
      b.ln_self = register_module(
          name + "_ln_self", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.d_model})));
      b.self_attn =
          register_module(name + "_self_attn", MultiheadAttention(cfg_.d_model, cfg_.heads));
      if (decoder) {
        b.ln_cross = register_module(
            name + "_ln_cross", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.d_model})));
        b.cross_attn =
            register_module(name + "_cross_attn", MultiheadAttention(cfg_.d_model, cfg_.heads));
      }
      b.ln_ffn = register_module(name + "_ln_ffn",
                                 torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.d_model})));
      // A dense method (DenseWidth > 0) puts a plain FFN of its width where an MoE layer
      // would be; every other block keeps width d_ff.
      const int64_t dense_width =
          method != nullptr ? method->DenseWidth(cfg_.d_ff, cfg_.num_experts) : 0;
      const bool moe_block = cfg_.IsMoeBlock(i) && method != nullptr;
      const bool use_moe = moe_block && dense_width == 0;
      const int64_t width = moe_block && dense_width > 0 ? dense_width : cfg_.d_ff;
      b.ffn = register_module(name + "_ffn", FeedForward(cfg_, use_moe, moe_index, decoder, method,
                                                         comm, exchange, static_shapes, width));
      if (use_moe) ++moe_index;
      blocks.push_back(b);
    }
  };
  make_blocks(cfg_.encoder_layers, false, encoder_);
  make_blocks(cfg_.decoder_layers, true, decoder_);
  if (method != nullptr) moe_dense_width_ = method->DenseWidth(cfg_.d_ff, cfg_.num_experts);
  for (auto m : MoeLayers()) {
    if (!m->router().parameters().empty()) router_experts_ = m->options().num_experts;
  }
  enc_norm_ = register_module("enc_norm",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.d_model})));
  dec_norm_ = register_module("dec_norm",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg_.d_model})));
  if (comm != nullptr) {
    const int w = comm->topology().workers;
    blocks_ = comm->plays_all_workers() ? WorkerBlocks{0, w, w}
                                        : WorkerBlocks{comm->rank(), 1, comm->size()};
  }
}

at::Tensor TransformerImpl::Dropout(const at::Tensor& x, const RouteContext& ctx, int site) const {
  if (!is_training()) return x;
  return BlockDropout(x, cfg_.dropout, ctx, site, blocks_);
}

at::Tensor TransformerImpl::Embed(const at::Tensor& tokens, int64_t offset, const RouteContext& ctx,
                                  int site) {
  const int64_t len = tokens.size(1);
  if (offset + len > cfg_.max_positions) {
    throw std::runtime_error("sequence longer than max_positions (" +
                             std::to_string(cfg_.max_positions) + ")");
  }
  at::Tensor x = embedding_.index_select(0, tokens.reshape({-1})).view({tokens.size(0), len, -1});
  x = x * std::sqrt(static_cast<double>(cfg_.d_model)) + positions_.narrow(0, offset, len);
  return Dropout(x, ctx, site);
}

DecoderState TransformerImpl::Encode(const at::Tensor& src, const RouteContext& ctx_in) {
  RouteContext ctx = ctx_in;
  ctx.decoder = false;
  // The encoder always sees whole sentences, also when decoding is incremental: it routes
  // with the evaluation capacity, exactly as the validation loss's forward does.
  ctx.incremental = false;
  ctx.position = 0;
  ctx.beam = 1;
  ctx.token_ids = src.reshape({-1});  // for hash routing (Note [Token ids at routing])
  const at::Tensor real = src.ne(pad_id());
  at::Tensor x = Embed(src, 0, ctx, Site(false, 0, -1));
  for (size_t i = 0; i < encoder_.size(); ++i) {
    auto& b = encoder_[i];
    x = x + Dropout(b.self_attn->forward(b.ln_self->forward(x), b.ln_self->forward(x),
                                         real.logical_not(), false),
                    ctx, Site(false, i, 0));
    x = x + Dropout(b.ffn->forward(b.ln_ffn->forward(x), real, ctx), ctx, Site(false, i, 2));
  }
  DecoderState state;
  state.memory = enc_norm_->forward(x);
  state.src_pad = real.logical_not();
  return state;
}

at::Tensor TransformerImpl::RunDecoder(at::Tensor y, const at::Tensor& tgt_real,
                                       const DecoderState& enc, const RouteContext& ctx_in,
                                       bool incremental, DecoderState* state) {
  RouteContext ctx = ctx_in;
  ctx.decoder = true;
  for (size_t i = 0; i < decoder_.size(); ++i) {
    auto& b = decoder_[i];
    KvCache* self_cache = incremental ? &state->self_cache[i] : nullptr;
    KvCache* cross_cache = incremental ? &state->cross_cache[i] : nullptr;
    at::Tensor h = b.ln_self->forward(y);
    y = y +
        Dropout(b.self_attn->forward(h, h, at::Tensor(), true, self_cache), ctx, Site(true, i, 0));
    h = b.ln_cross->forward(y);
    y = y + Dropout(b.cross_attn->forward(h, enc.memory, enc.src_pad, false, cross_cache, true),
                    ctx, Site(true, i, 1));
    y = y + Dropout(b.ffn->forward(b.ln_ffn->forward(y), tgt_real, ctx), ctx, Site(true, i, 2));
  }
  return at::matmul(dec_norm_->forward(y), embedding_.t());
}

double TransformerImpl::NonexpertForwardFlops(int64_t batch, int64_t src_len,
                                              int64_t tgt_len) const {
  return ModelForwardFlops(cfg_, moe_dense_width_, router_experts_, batch, src_len, tgt_len)
      .total();
}

double TransformerImpl::NonexpertForwardFlops(const std::vector<int64_t>& src_lengths,
                                              const std::vector<int64_t>& tgt_lengths) const {
  if (src_lengths.size() != tgt_lengths.size()) {
    throw std::invalid_argument("NonexpertForwardFlops: " + std::to_string(src_lengths.size()) +
                                " source lengths but " + std::to_string(tgt_lengths.size()) +
                                " target lengths");
  }
  double flops = 0;
  for (size_t i = 0; i < src_lengths.size(); ++i) {
    flops += NonexpertForwardFlops(1, src_lengths[i], tgt_lengths[i]);
  }
  return flops;
}

at::Tensor TransformerImpl::forward(const at::Tensor& src, const at::Tensor& tgt_in,
                                    const RouteContext& ctx) {
  // Each sentence at its real length when the context has the batch's (Note [Compute model]).
  const size_t b = static_cast<size_t>(src.size(0));
  if (ctx.src_lengths && ctx.tgt_lengths && ctx.src_lengths->size() == b &&
      ctx.tgt_lengths->size() == b) {
    nonexpert_flops_ += NonexpertForwardFlops(*ctx.src_lengths, *ctx.tgt_lengths);
  } else {
    nonexpert_flops_ += NonexpertForwardFlops(src.size(0), src.size(1), tgt_in.size(1));
  }
  DecoderState enc = Encode(src, ctx);
  RouteContext dctx = ctx;
  dctx.token_ids = tgt_in.reshape({-1});  // the decoder input: BOS, y_1, ...
  return RunDecoder(Embed(tgt_in, 0, dctx, Site(true, 0, -1)), tgt_in.ne(pad_id()), enc, dctx,
                    false, nullptr);
}

std::vector<double> TransformerImpl::expert_forward_flops_by_worker() const {
  std::vector<double> out;
  for (const auto& m : MoeLayers()) {
    const std::vector<double>& f = m->expert_flops_by_worker();
    if (out.size() < f.size()) out.resize(f.size(), 0.0);
    for (size_t i = 0; i < f.size(); ++i) out[i] += f[i];
  }
  return out;
}

at::Tensor TransformerImpl::DecodeStep(DecoderState& state, const at::Tensor& tokens,
                                       const RouteContext& ctx) {
  if (state.self_cache.empty()) {
    state.self_cache.resize(decoder_.size());
    state.cross_cache.resize(decoder_.size());
  }
  at::Tensor t = tokens.view({-1, 1});
  RouteContext c = ctx;
  c.position = state.position;
  c.token_ids = t.reshape({-1});  // this step's input tokens
  at::Tensor logits =
      RunDecoder(Embed(t, state.position, c, Site(true, 0, -1)), t.ne(-1), state, c, true, &state);
  state.position += 1;
  return at::log_softmax(logits.squeeze(1).to(at::kFloat), -1);
}

at::Tensor TransformerImpl::AuxLoss() const {
  at::Tensor total = at::zeros({}, embedding_.options().dtype(at::kFloat));
  for (const auto& m : MoeLayers()) total = total + m->aux_loss();
  return total;
}

std::vector<MoeLayer> TransformerImpl::MoeLayers() const {
  std::vector<MoeLayer> out;
  for (const auto* blocks : {&encoder_, &decoder_}) {
    for (const auto& b : *blocks) {
      if (b.ffn->moe) out.push_back(b.ffn->moe);
    }
  }
  return out;
}

ParamCounts TransformerImpl::CountParams(int64_t active_experts_per_token) const {
  ParamCounts c;
  for (const auto& p : parameters()) c.total += p.numel();
  c.active = c.total;
  for (const auto& m : MoeLayers()) {
    const auto& ex = m->experts();
    const int64_t per_expert = ex.d_model() * ex.d_hidden() * 2 + ex.d_hidden() + ex.d_model();
    const int64_t inactive = std::max<int64_t>(ex.num_experts() - active_experts_per_token, 0);
    c.active -= inactive * per_expert;
  }
  return c;
}

namespace {

// Per target position: [B * L, 1] label-smoothed loss and NLL (zero at pads).
std::pair<at::Tensor, at::Tensor> TokenLosses(const at::Tensor& logits, const at::Tensor& target,
                                              double epsilon, int64_t pad_id) {
  const int64_t v = logits.size(-1);
  at::Tensor lprobs = at::log_softmax(logits.to(at::kFloat), -1).view({-1, v});
  at::Tensor tgt = target.reshape({-1, 1});
  at::Tensor real = tgt.ne(pad_id).to(at::kFloat);
  at::Tensor nll = -lprobs.gather(1, tgt) * real;
  at::Tensor smooth = -lprobs.sum(-1, /*keepdim=*/true) * real;
  const double eps_i = epsilon / static_cast<double>(v - 1);
  return {(1.0 - epsilon - eps_i) * nll + eps_i * smooth, nll};
}

}  // namespace

std::pair<at::Tensor, at::Tensor> LabelSmoothedCrossEntropyRows(const at::Tensor& logits,
                                                                const at::Tensor& target,
                                                                double epsilon, int64_t pad_id) {
  auto [loss, nll] = TokenLosses(logits, target, epsilon, pad_id);
  const int64_t b = target.size(0);
  return {loss.view({b, -1}).sum(1), nll.view({b, -1}).sum(1)};
}

std::pair<at::Tensor, at::Tensor> LabelSmoothedCrossEntropy(const at::Tensor& logits,
                                                            const at::Tensor& target,
                                                            double epsilon, int64_t pad_id) {
  auto [loss, nll] = TokenLosses(logits, target, epsilon, pad_id);
  return {loss.sum(), nll.sum()};
}

}  // namespace moebench
