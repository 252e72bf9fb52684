#include <set>
#include <stdexcept>

#include "methods/method.h"
#include "methods/switch.h"

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

template <typename M>
std::unique_ptr<Method> Make(const Knobs& knobs) {
  return std::make_unique<M>(knobs);
}

std::vector<MethodInfo> BuildRegistry() {
  std::vector<MethodInfo> table = {
      {"switch", "top-1, capacity factor, token dropping, load-balancing aux loss (Switch)",
       SwitchKnobSpecs(), &Make<SwitchMethod>},
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
