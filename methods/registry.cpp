#include <cmath>
#include <set>
#include <stdexcept>

#include "methods/dense.h"
#include "methods/expert_choice.h"
#include "methods/gating_dropout.h"
#include "methods/gshard.h"
#include "methods/method.h"
#include "methods/smoe_dropout.h"
#include "methods/switch.h"
#include "methods/thor.h"
#include "methods/uniform.h"

namespace moebench {

ObjectiveOutput Method::Objective(const ForwardFn& forward) const {
  ObjectiveOutput out;
  out.first = forward(0);
  const double n = static_cast<double>(std::max<int64_t>(out.first.ntokens, 1));
  out.loss = out.first.ce_sum / n + out.first.aux;
  return out;
}

namespace {

class SwitchMethod : public Method {
 public:
  explicit SwitchMethod(const Knobs& knobs) : Method(knobs), opt_(SwitchOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<SwitchRouter>(layer.d_model, layer.num_experts, opt_);
  }

 private:
  SwitchOptions opt_;
};

class GShardMethod : public Method {
 public:
  explicit GShardMethod(const Knobs& knobs) : Method(knobs), opt_(GShardOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<GShardRouter>(layer.d_model, layer.num_experts, opt_);
  }
  int64_t ActiveExperts() const override { return 2; }

 private:
  GShardOptions opt_;
};

// Expert Choice in the encoder; GShard top-2 in the decoder (METHODS.md section 3).
class ExpertChoiceMethod : public Method {
 public:
  explicit ExpertChoiceMethod(const Knobs& knobs)
      : Method(knobs), opt_(ExpertChoiceOptionsFromKnobs(knobs)) {
    decoder_.aux_coef = knobs.GetDouble("decoder_aux_coef");
  }
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    if (layer.decoder)
      return std::make_shared<GShardRouter>(layer.d_model, layer.num_experts, decoder_);
    return std::make_shared<ExpertChoiceRouter>(layer.d_model, layer.num_experts, opt_);
  }
  int64_t ActiveExperts() const override {
    return std::max<int64_t>(1, static_cast<int64_t>(std::llround(opt_.capacity_factor)));
  }

 private:
  ExpertChoiceOptions opt_;
  GShardOptions decoder_;
};

class SmoeDropoutMethod : public Method {
 public:
  explicit SmoeDropoutMethod(const Knobs& knobs)
      : Method(knobs), opt_(SmoeDropoutOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<SmoeDropoutRouter>(layer.d_model, layer.num_experts, opt_);
  }
  int64_t ExpertHidden(int64_t d_ff, int64_t num_experts) const override {
    if (d_ff % num_experts != 0) {
      throw std::invalid_argument("smoe_dropout: d_ff (" + std::to_string(d_ff) +
                                  ") must be divisible by the number of experts (" +
                                  std::to_string(num_experts) + ")");
    }
    return d_ff / num_experts;
  }
  // Parameters touched per token at the end of training (k_max experts of width d_ff / E).
  int64_t ActiveExperts() const override { return opt_.k_max > 0 ? opt_.k_max : 1 << 30; }
  std::vector<std::string> KnobsBoundedByExperts() const override {
    return {"k_min", "k_max", "eval_k"};
  }

 private:
  SmoeDropoutOptions opt_;
};

class GatingDropoutMethod : public Method {
 public:
  explicit GatingDropoutMethod(const Knobs& knobs)
      : Method(knobs), opt_(GatingDropoutOptionsFromKnobs(knobs)), base_(knobs.GetString("base")) {
    switch_ = SwitchOptionsFromKnobs(knobs);
    gshard_.capacity_factor = switch_.capacity_factor;
    gshard_.eval_capacity_factor = switch_.eval_capacity_factor;
    gshard_.min_capacity = switch_.min_capacity;
    gshard_.aux_coef = switch_.aux_coef;
    gshard_.z_coef = switch_.z_coef;
    gshard_.second_policy = knobs.GetString("second_policy");
    gshard_.normalize = knobs.GetString("normalize");
  }
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    std::shared_ptr<Router> base;
    if (base_ == "gshard") {
      base = std::make_shared<GShardRouter>(layer.d_model, layer.num_experts, gshard_);
    } else {
      base = std::make_shared<SwitchRouter>(layer.d_model, layer.num_experts, switch_);
    }
    return std::make_shared<GatingDropoutRouter>(base, layer.num_experts, opt_);
  }
  int64_t ActiveExperts() const override { return base_ == "gshard" ? 2 : 1; }

 private:
  GatingDropoutOptions opt_;
  std::string base_;
  SwitchOptions switch_;
  GShardOptions gshard_;
};

class UniformMethod : public Method {
 public:
  explicit UniformMethod(const Knobs& knobs) : Method(knobs), k_(knobs.GetInt("k")) {
    if (k_ < 1) throw std::invalid_argument("knob k: must be >= 1");
  }
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<UniformRouter>(layer.num_experts, k_);
  }
  int64_t ActiveExperts() const override { return k_; }
  std::vector<std::string> KnobsBoundedByExperts() const override { return {"k"}; }

 private:
  int64_t k_;
};

template <typename M>
std::unique_ptr<Method> Make(const Knobs& knobs) {
  return std::make_unique<M>(knobs);
}

std::vector<MethodInfo> BuildRegistry() {
  std::vector<MethodInfo> table = {
      {"switch", "top-1, capacity factor, token dropping, load-balancing aux loss (Switch)",
       SwitchKnobSpecs(), &Make<SwitchMethod>},
      {"gshard",
       "top-2, second expert kept w.p. min(1, 2*g2n), first choices fill slots first (GShard)",
       GShardKnobSpecs(), &Make<GShardMethod>},
      {"expert_choice",
       "experts pick their top-k tokens in the encoder; GShard top-2 in the decoder (EC)",
       ExpertChoiceKnobSpecs(), &Make<ExpertChoiceMethod>},
      {"thor", "no router: random experts, two passes, symmetric-KL consistency loss (THOR)",
       ThorKnobSpecs(), &Make<ThorMethod>},
      {"smoe_dropout",
       "frozen random router, k grows during training, experts split the dense FFN (SMoE-Dropout)",
       SmoeDropoutKnobSpecs(), &Make<SmoeDropoutMethod>},
      {"gating_dropout",
       "a base router whose all-to-all is skipped w.p. p per layer and step (Gating Dropout)",
       GatingDropoutKnobSpecs(), &Make<GatingDropoutMethod>},
      {"uniform", "forced uniform routing: the best-case throughput baseline, not a quality method",
       UniformKnobSpecs(), &Make<UniformMethod>},
      {"dense",
       "no MoE layer: a plain FFN of width d_ff (sizing = active) or E x d_ff (total) in its place",
       DenseKnobSpecs(), &Make<DenseMethod>},
  };
  std::set<std::string> seen;
  for (const auto& info : table) {
    if (!seen.insert(info.name).second) {
      throw std::logic_error("method registry: duplicate method '" + info.name + "'");
    }
  }
  return table;
}

}  // namespace

const std::vector<MethodInfo>& MethodRegistry() {
  static const std::vector<MethodInfo> registry = BuildRegistry();
  return registry;
}

const MethodInfo& FindMethod(const std::string& name) {
  std::string known;
  for (const auto& info : MethodRegistry()) {
    if (info.name == name) return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw std::invalid_argument("unknown method '" + name + "' (known: " + known + ")");
}

std::unique_ptr<Method> MakeMethod(const std::string& name,
                                   const std::map<std::string, std::string>& overrides) {
  const MethodInfo& info = FindMethod(name);
  return info.make(Knobs(name, info.knobs, overrides));
}

}  // namespace moebench
