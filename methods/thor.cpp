#include "methods/thor.h"

#include <algorithm>
#include <stdexcept>

#include "methods/routing_util.h"

namespace moebench {

namespace {
constexpr uint64_t kPurposeBatchExpert = 21;
constexpr uint64_t kPurposeTokenExpert = 22;
constexpr uint64_t kPurposeSentenceExpert = 23;
}  // namespace

std::vector<KnobSpec> ThorKnobSpecs() {
  return {
      {"alpha", "5.0", "consistency (symmetric KL) weight", "paper; IWSLT script"},
      {"train_granularity", "batch",
       "training draw: batch (one expert per layer per forward pass for the whole batch, on "
       "every worker, as the authors' code does) | token (one per token: opt-in, balanced over "
       "expert-parallel workers, not the paper's method)",
       "code (batch); token: docs/METHODS.md section 4 harness notes"},
      {"inference", "sentence", "inference draw: one expert per sentence | per token",
       "IWSLT script (inference-level 1)"},
      {"resample_each_step", "false", "new draw at every decoding step (as the fairseq code does)",
       "code"},
  };
}

ThorOptions ThorOptionsFromKnobs(const Knobs& knobs) {
  ThorOptions o;
  o.alpha = knobs.GetDouble("alpha");
  o.resample_each_step = knobs.GetBool("resample_each_step");
  const std::string& granularity = knobs.GetString("train_granularity");
  if (granularity == "batch") {
    o.train_granularity = ThorGranularity::kBatch;
  } else if (granularity == "token") {
    o.train_granularity = ThorGranularity::kToken;
  } else {
    // "auto" (token draws whenever workers > 1) was the default once; it made every
    // multi-worker THOR run something other than THOR, so it is gone rather than kept.
    throw std::invalid_argument("knob train_granularity: expected batch or token, got '" +
                                granularity + "'");
  }
  const std::string& inference = knobs.GetString("inference");
  if (inference == "sentence") {
    o.inference = ThorInference::kSentence;
  } else if (inference == "token") {
    o.inference = ThorInference::kToken;
  } else {
    throw std::invalid_argument("knob inference: expected sentence or token, got '" + inference +
                                "'");
  }
  return o;
}

at::Tensor SymmetricKl(const at::Tensor& logits_p, const at::Tensor& logits_q,
                       const at::Tensor& mask) {
  const at::Tensor lp = at::log_softmax(logits_p.to(at::kFloat), -1);
  const at::Tensor lq = at::log_softmax(logits_q.to(at::kFloat), -1);
  const at::Tensor per_token = ((lp.exp() - lq.exp()) * (lp - lq)).sum(-1);
  return 0.5 * (per_token * mask.to(at::kFloat)).sum();
}

Routing ThorRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const int64_t t = x.size(0);
  const at::Tensor active = ActiveMask(pad, t, x.device());
  at::Tensor experts;  // [T, k]
  int64_t k = 1;
  // The draws are made on the CPU (the same numbers on every device) and moved to x's device.
  if (ctx.training) {
    // Batch draws whatever the topology (the authors' code); token draws only when asked.
    const bool per_token = opt_.train_granularity == ThorGranularity::kToken;
    if (per_token) {
      experts =
          OnDeviceOf(at::randint(num_experts_, {t, 1},
                                 MakeGenerator(RoutingSeed(ctx, ctx.group, kPurposeTokenExpert)),
                                 at::TensorOptions().dtype(at::kLong)),
                     x);
    } else {
      // One expert for the whole batch: the same draw on every worker (group -1).
      const at::Tensor e =
          at::randint(num_experts_, {1}, MakeGenerator(RoutingSeed(ctx, -1, kPurposeBatchExpert)),
                      at::TensorOptions().dtype(at::kLong));
      experts = OnDeviceOf(e, x).expand({t, 1}).contiguous();
    }
  } else {
    // Inference: a uniform draw per sentence (or token) and layer; an ensemble of k distinct
    // experts when evaluated at k > 1. Seeded by the sentence's row in the batch, so the draw
    // stays the same through incremental decoding unless resampling is asked for.
    k = std::clamp<int64_t>(ctx.eval_k > 0 ? ctx.eval_k : 1, 1, num_experts_);
    const int64_t per_sentence = std::max<int64_t>(ctx.tokens_per_sentence, 1);
    const int64_t total = ctx.total_tokens > 0 ? ctx.total_tokens : t;
    const int64_t offset =
        GroupBegin(total, per_sentence, std::max(ctx.topology.workers, 1), ctx.group);
    RouteContext seed_ctx = ctx;
    seed_ctx.step = opt_.resample_each_step ? ctx.position : 0;
    const bool per_sentence_draw = opt_.inference == ThorInference::kSentence;
    const int64_t n_units = per_sentence_draw ? (total + per_sentence - 1) / per_sentence : total;
    // Draw a random ordering of the experts for every unit and take its first k.
    const at::Tensor keys = at::rand(
        {n_units, num_experts_}, MakeGenerator(RoutingSeed(seed_ctx, -1, kPurposeSentenceExpert)));
    const at::Tensor order = std::get<1>(keys.sort(1)).narrow(1, 0, k);
    at::Tensor unit = at::arange(offset, offset + t, at::kLong);  // on the CPU, with the draw
    if (per_sentence_draw) {
      // Beam search expands each sentence into `beam` rows during incremental decoding.
      const int64_t rows_per_sentence =
          per_sentence == 1 ? std::max<int64_t>(ctx.beam, 1) : per_sentence;
      unit = at::div(unit, rows_per_sentence, "floor");
    }
    experts = OnDeviceOf(order.index_select(0, unit), x);
  }
  const at::Tensor weights =
      at::full({t, k}, 1.0 / static_cast<double>(k), x.options().dtype(at::kFloat));
  const at::Tensor act = active.unsqueeze(1).expand({t, k}).contiguous();
  return AssignChoices(experts, weights, act, num_experts_, 0, ctx.defer_counts);
}

std::unique_ptr<Method> MakeThorMethod(const Knobs& knobs) {
  return std::make_unique<ThorMethod>(knobs);
}

ThorMethod::ThorMethod(const Knobs& knobs) : Method(knobs), opt_(ThorOptionsFromKnobs(knobs)) {}

std::shared_ptr<Router> ThorMethod::MakeRouter(const LayerSpec& layer) {
  return std::make_shared<ThorRouter>(layer.num_experts, opt_);
}

ObjectiveOutput ThorMethod::Objective(const ForwardFn& forward) const {
  ObjectiveOutput out;
  out.first = forward(0);
  ForwardOutput second = forward(1);
  const at::Tensor skl = SymmetricKl(out.first.logits, second.logits, out.first.target_mask);
  const at::Tensor n = LossNormaliser(out.first);
  out.loss = (out.first.ce_sum + second.ce_sum + opt_.alpha * skl) / n;
  out.metrics["thor_skl"] = skl.detach() / n;
  return out;
}

Routing ThorMethod::RouteLogits(const at::Tensor& /*logits*/, const at::Tensor& /*pad*/,
                                const LogitsRequest& /*req*/) const {
  throw std::invalid_argument(
      "method thor has no router to route logits with (THOR draws experts at random)");
}

}  // namespace moebench
