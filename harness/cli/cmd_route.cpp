// `moebench route`: router logits in (JSON on stdin), routing decisions out (JSON), so a
// researcher can inspect a router or compare it with another implementation.
#include <cmath>
#include <iostream>
#include <iterator>
#include <set>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/cli_common.h"
#include "methods/expert_choice.h"
#include "methods/gating_dropout.h"
#include "methods/gshard.h"
#include "methods/method.h"
#include "methods/routing_util.h"
#include "methods/smoe_dropout.h"
#include "methods/switch.h"
#include "methods/uniform.h"

namespace moebench {

namespace {

const std::set<std::string> kReserved = {"logits", "method", "capacity", "pad",     "training",
                                         "seed",   "step",   "k",        "workers", "group"};

std::string KnobText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

at::Tensor ParseLogits(const nlohmann::json& j) {
  if (!j.contains("logits") || !j["logits"].is_array() || j["logits"].empty()) {
    throw std::invalid_argument("route: \"logits\" must be a non-empty [tokens][experts] array");
  }
  const auto& rows = j["logits"];
  const size_t e = rows[0].size();
  std::vector<float> flat;
  for (size_t t = 0; t < rows.size(); ++t) {
    if (!rows[t].is_array() || rows[t].size() != e || e == 0) {
      throw std::invalid_argument("route: logits row " + std::to_string(t) + " has " +
                                  std::to_string(rows[t].size()) + " values, expected " +
                                  std::to_string(e));
    }
    for (const auto& v : rows[t]) {
      if (!v.is_number()) {
        throw std::invalid_argument("route: logits row " + std::to_string(t) +
                                    " holds a non-number");
      }
      flat.push_back(v.get<float>());
    }
  }
  return at::tensor(flat).view({static_cast<int64_t>(rows.size()), static_cast<int64_t>(e)});
}

nlohmann::json Route(const nlohmann::json& req) {
  if (!req.is_object()) throw std::invalid_argument("route: expected a JSON object on stdin");
  if (!req.contains("method")) throw std::invalid_argument("route: \"method\" is required");
  const std::string method = req["method"].get<std::string>();
  const at::Tensor logits = ParseLogits(req);
  const int64_t t = logits.size(0), e = logits.size(1);
  at::Tensor pad;
  if (req.contains("pad")) {
    std::vector<int64_t> p = req["pad"].get<std::vector<int64_t>>();
    if (static_cast<int64_t>(p.size()) != t) {
      throw std::invalid_argument("route: \"pad\" has " + std::to_string(p.size()) +
                                  " entries for " + std::to_string(t) + " tokens");
    }
    pad = at::tensor(p).to(at::kBool);
  }
  std::map<std::string, std::string> knobs;
  for (const auto& [key, value] : req.items()) {
    if (kReserved.count(key) == 0) knobs[key] = KnobText(value);
  }
  if (method == "uniform" && req.contains("k")) knobs["k"] = KnobText(req["k"]);
  const MethodInfo& info = FindMethod(method);
  const Knobs resolved(method, info.knobs, knobs);  // unknown knobs are errors here

  RouteContext ctx;
  ctx.training = req.value("training", false);
  ctx.seed = req.value("seed", 1);
  ctx.step = req.value("step", 0);
  ctx.topology.workers = req.value("workers", 1);
  ctx.group = req.value("group", 0);
  const int64_t n_real = pad.defined() ? pad.sum().item<int64_t>() : t;
  const bool explicit_cap = req.contains("capacity");
  const int64_t cap_in = explicit_cap ? req["capacity"].get<int64_t>() : 0;
  const int64_t k_in = req.value("k", int64_t{0});

  Routing r;
  if (method == "switch" || method == "gating_dropout") {
    const SwitchOptions opt = SwitchOptionsFromKnobs(resolved);
    const double cf = ctx.training ? opt.capacity_factor : opt.eval_capacity_factor;
    const int64_t cap = explicit_cap ? cap_in : ExpertCapacity(cf, n_real, e, opt.min_capacity);
    if (method == "gating_dropout" && resolved.GetString("base") == "gshard") {
      throw std::invalid_argument(
          "route: gating_dropout with base gshard: route with method gshard");
    }
    r = RouteTop1(logits, pad, cap, opt, ctx);
    if (method == "gating_dropout") {
      const GatingDropoutOptions g = GatingDropoutOptionsFromKnobs(resolved);
      if (GatingDropoutCoin(ctx, g.p)) KeepOnLocalWorker(r, ctx, e);
    }
  } else if (method == "gshard") {
    const GShardOptions opt = GShardOptionsFromKnobs(resolved);
    const double cf = ctx.training ? opt.capacity_factor : opt.eval_capacity_factor;
    const int64_t cap = explicit_cap ? cap_in
                        : cf > 0     ? ExpertCapacity(2.0 * cf, n_real, e, opt.min_capacity)
                                     : std::max<int64_t>(n_real, 1);
    r = RouteTop2(logits, pad, cap, opt, ctx);
  } else if (method == "expert_choice") {
    const ExpertChoiceOptions opt = ExpertChoiceOptionsFromKnobs(resolved);
    const int64_t k = explicit_cap ? cap_in
                      : k_in > 0   ? k_in
                                   : ExpertChoiceK(opt.capacity_factor, n_real, e);
    r = RouteExpertChoice(logits, pad, k, opt);
  } else if (method == "smoe_dropout") {
    const SmoeDropoutOptions opt = SmoeDropoutOptionsFromKnobs(resolved);
    r = RouteTopKSoftmax(logits, pad, k_in > 0 ? k_in : (opt.eval_k > 0 ? opt.eval_k : e));
  } else if (method == "uniform") {
    r = RouteUniform(t, pad, e, resolved.GetInt("k"));
  } else {
    throw std::invalid_argument(
        "route: method " + method + " has no router to route logits with (" +
        (method == "dense" ? std::string("the dense baseline has no MoE layer")
                           : std::string("THOR draws experts at random")) +
        ")");
  }

  nlohmann::json out;
  out["method"] = method;
  out["tokens"] = t;
  out["experts"] = e;
  out["capacity"] = r.capacity;
  out["aux_loss"] = nullptr;
  for (const AuxLoss& l : r.losses)
    out[l.name == "aux" ? "aux_loss" : l.name + "_loss"] = l.value.item<double>();
  const at::Tensor kept = at::bincount(r.expert, {}, e);
  out["tokens_per_expert"] =
      std::vector<int64_t>(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + e);
  nlohmann::json assignments = nlohmann::json::array();
  for (int64_t i = 0; i < r.token.size(0); ++i) {
    assignments.push_back({{"token", r.token[i].item<int64_t>()},
                           {"expert", r.expert[i].item<int64_t>()},
                           {"slot", r.slot[i].item<int64_t>()},
                           {"weight", r.weight[i].item<double>()}});
  }
  out["assignments"] = assignments;
  nlohmann::json dropped = nlohmann::json::array();
  if (r.dropped_token.defined()) {
    for (int64_t i = 0; i < r.dropped_token.size(0); ++i) {
      dropped.push_back({{"token", r.dropped_token[i].item<int64_t>()},
                         {"choice", r.dropped_choice[i].item<int64_t>()},
                         {"expert", r.dropped_expert[i].item<int64_t>()}});
    }
  }
  out["dropped"] = dropped;
  if (r.skip_exchange) out["local_only"] = true;
  return out;
}

}  // namespace

void RegisterRouteCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "route", "route router logits given as JSON on stdin; print the routing as JSON");
  cmd->callback([]() {
    const std::string input((std::istreambuf_iterator<char>(std::cin)),
                            std::istreambuf_iterator<char>());
    nlohmann::json req;
    try {
      req = nlohmann::json::parse(input);
    } catch (const nlohmann::json::parse_error& e) {
      throw std::invalid_argument(std::string("route: stdin is not valid JSON: ") + e.what());
    }
    std::cout << Route(req).dump(2) << std::endl;
  });
}

}  // namespace moebench
