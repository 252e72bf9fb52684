// `moebench route`: router logits in (JSON on stdin), routing decisions out (JSON), so a
// researcher can inspect a router or compare it with another implementation. Methods are
// reached through the registry only: each routes the logits with Method::RouteLogits.
#include <cmath>
#include <cstdint>
#include <iostream>
#include <iterator>
#include <limits>
#include <set>
#include <stdexcept>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "harness/cli/cli_common.h"
#include "methods/method.h"

namespace moebench {

namespace {

const std::set<std::string> kReserved = {
    "logits", "method",  "capacity",         "pad",   "training",  "seed",    "step",
    "k",      "workers", "workers_per_node", "group", "token_ids", "decoder", "layer"};

std::string KnobText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

// An integer key of the request, at least `min`, or `fallback` when absent.
int64_t IntKey(const nlohmann::json& req, const std::string& key, int64_t fallback, int64_t min) {
  if (!req.contains(key)) return fallback;
  const nlohmann::json& v = req[key];
  if (!v.is_number_integer()) {
    throw std::invalid_argument("route: \"" + key + "\" must be an integer, got " + v.dump());
  }
  if (v.is_number_unsigned() &&
      v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    throw std::invalid_argument("route: \"" + key + "\" is out of range: " + v.dump());
  }
  const int64_t i = v.get<int64_t>();
  if (i < min) {
    throw std::invalid_argument("route: \"" + key + "\" must be >= " + std::to_string(min) +
                                ", got " + std::to_string(i));
  }
  return i;
}

bool BoolKey(const nlohmann::json& req, const std::string& key, bool fallback) {
  if (!req.contains(key)) return fallback;
  if (!req[key].is_boolean()) {
    throw std::invalid_argument("route: \"" + key + "\" must be true or false, got " +
                                req[key].dump());
  }
  return req[key].get<bool>();
}

at::Tensor ParseLogits(const nlohmann::json& j) {
  if (!j.contains("logits") || !j["logits"].is_array() || j["logits"].empty()) {
    throw std::invalid_argument("route: \"logits\" must be a non-empty [tokens][experts] array");
  }
  const auto& rows = j["logits"];
  const size_t e = rows[0].is_array() ? rows[0].size() : 0;
  std::vector<float> flat;
  for (size_t t = 0; t < rows.size(); ++t) {
    if (!rows[t].is_array()) {
      throw std::invalid_argument("route: logits row " + std::to_string(t) +
                                  " is not an array (\"logits\" is [tokens][experts])");
    }
    if (rows[t].size() != e || e == 0) {
      throw std::invalid_argument("route: logits row " + std::to_string(t) + " has " +
                                  std::to_string(rows[t].size()) + " values, expected " +
                                  std::to_string(e));
    }
    for (const auto& v : rows[t]) {
      if (!v.is_number()) {
        throw std::invalid_argument("route: logits row " + std::to_string(t) +
                                    " holds a non-number");
      }
      // The routers run in fp32: a value beyond float's range would be infinite there.
      const double d = v.get<double>();
      if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
        throw std::invalid_argument("route: logits row " + std::to_string(t) + " holds " +
                                    v.dump() + ", not a finite float32 value");
      }
      flat.push_back(static_cast<float>(d));
    }
  }
  return at::tensor(flat).view({static_cast<int64_t>(rows.size()), static_cast<int64_t>(e)});
}

at::Tensor ParsePad(const nlohmann::json& req, int64_t t) {
  if (!req.contains("pad")) return at::Tensor();
  const nlohmann::json& p = req["pad"];
  if (!p.is_array()) throw std::invalid_argument("route: \"pad\" must be an array of 0 and 1");
  if (static_cast<int64_t>(p.size()) != t) {
    throw std::invalid_argument("route: \"pad\" has " + std::to_string(p.size()) + " entries for " +
                                std::to_string(t) + " tokens");
  }
  std::vector<int64_t> mask;
  for (const auto& v : p) {
    if (!v.is_number_integer() || (v.get<int64_t>() != 0 && v.get<int64_t>() != 1)) {
      throw std::invalid_argument("route: \"pad\" entries must be 0 or 1 (1 = real token), got " +
                                  v.dump());
    }
    mask.push_back(v.get<int64_t>());
  }
  return at::tensor(mask).to(at::kBool);
}

// "token_ids": the input token id of each logits row (hash routing), non-negative integers.
at::Tensor ParseTokenIds(const nlohmann::json& req, int64_t t) {
  if (!req.contains("token_ids")) return at::Tensor();
  const nlohmann::json& p = req["token_ids"];
  if (!p.is_array()) throw std::invalid_argument("route: \"token_ids\" must be an array");
  if (static_cast<int64_t>(p.size()) != t) {
    throw std::invalid_argument("route: \"token_ids\" has " + std::to_string(p.size()) +
                                " entries for " + std::to_string(t) + " tokens");
  }
  std::vector<int64_t> ids;
  for (const auto& v : p) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        (v.is_number_unsigned() &&
         v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      throw std::invalid_argument("route: \"token_ids\" entries must be integers >= 0, got " +
                                  v.dump());
    }
    ids.push_back(v.get<int64_t>());
  }
  return at::tensor(ids, at::kLong);
}

// The method, with the request's other keys as its knobs (unknown knobs are errors), refused
// when a knob that counts experts exceeds the logits' experts.
std::unique_ptr<Method> MakeRequestMethod(const nlohmann::json& req, const std::string& name,
                                          int64_t e) {
  const MethodInfo& info = FindMethod(name);
  std::map<std::string, std::string> knobs;
  for (const auto& [key, value] : req.items()) {
    if (kReserved.count(key) == 0) knobs[key] = KnobText(value);
  }
  // A method whose experts-per-token knob is called k (uniform) takes the request's k.
  for (const KnobSpec& spec : info.knobs) {
    if (spec.name == "k" && req.contains("k")) knobs["k"] = KnobText(req["k"]);
  }
  std::unique_ptr<Method> method = info.make(Knobs(name, info.knobs, knobs));
  for (const std::string& knob : method->KnobsBoundedByExperts()) {
    const int64_t v = method->knobs().GetInt(knob);
    if (v > e) {
      throw std::invalid_argument("route: knob " + knob + " = " + std::to_string(v) +
                                  " exceeds the " + std::to_string(e) + " experts of the logits");
    }
  }
  return method;
}

LogitsRequest ParseRequest(const nlohmann::json& req, const at::Tensor& pad, int64_t t, int64_t e) {
  LogitsRequest r;
  r.ctx.training = BoolKey(req, "training", false);
  r.ctx.seed = static_cast<uint64_t>(IntKey(req, "seed", 1, 0));
  r.ctx.step = IntKey(req, "step", 0, 0);
  r.ctx.topology.workers = static_cast<int>(IntKey(req, "workers", 1, 1));
  if (e % r.ctx.topology.workers != 0) {
    throw std::invalid_argument("route: \"workers\" (" + std::to_string(r.ctx.topology.workers) +
                                ") must divide the " + std::to_string(e) +
                                " experts of the logits");
  }
  // Nodes of workers_per_node workers (node-limited routing's default groups).
  r.ctx.topology.workers_per_node = static_cast<int>(IntKey(req, "workers_per_node", 1, 1));
  if (r.ctx.topology.workers_per_node > r.ctx.topology.workers) {
    throw std::invalid_argument("route: \"workers_per_node\" must be in [1, workers], got " +
                                std::to_string(r.ctx.topology.workers_per_node));
  }
  r.ctx.group = static_cast<int>(IntKey(req, "group", 0, 0));
  if (r.ctx.group >= r.ctx.topology.workers) {
    throw std::invalid_argument("route: \"group\" must be in [0, workers), got " +
                                std::to_string(r.ctx.group));
  }
  r.ctx.token_ids = ParseTokenIds(req, t);
  r.ctx.decoder = BoolKey(req, "decoder", false);
  r.ctx.layer = static_cast<int>(IntKey(req, "layer", 0, 0));
  r.real_tokens = pad.defined() ? pad.sum().item<int64_t>() : t;
  r.capacity = IntKey(req, "capacity", -1, 0);
  r.k = IntKey(req, "k", 0, 1);
  return r;
}

nlohmann::json RoutingJson(const Routing& r, const std::string& method, int64_t t, int64_t e) {
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

nlohmann::json Route(const nlohmann::json& req) {
  if (!req.is_object()) throw std::invalid_argument("route: expected a JSON object on stdin");
  if (!req.contains("method")) throw std::invalid_argument("route: \"method\" is required");
  if (!req["method"].is_string()) {
    throw std::invalid_argument("route: \"method\" must be a string, got " + req["method"].dump());
  }
  const std::string name = req["method"].get<std::string>();
  const at::Tensor logits = ParseLogits(req);
  const int64_t t = logits.size(0), e = logits.size(1);
  const at::Tensor pad = ParsePad(req, t);
  const std::unique_ptr<Method> method = MakeRequestMethod(req, name, e);
  const LogitsRequest request = ParseRequest(req, pad, t, e);
  Routing r;
  try {
    r = method->RouteLogits(logits, pad, request);
  } catch (const std::invalid_argument& err) {
    throw std::invalid_argument(std::string("route: ") + err.what());
  } catch (const c10::Error& err) {
    // A case the checks above missed: the message, never LibTorch's stack trace.
    throw std::invalid_argument("route: method " + name +
                                " could not route this request: " + err.what_without_backtrace());
  }
  return RoutingJson(r, name, t, e);
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
    } catch (const nlohmann::json::exception& e) {  // syntax, or a number out of range
      throw std::invalid_argument(std::string("route: stdin is not valid JSON: ") + e.what());
    }
    std::cout << Route(req).dump(2) << std::endl;
  });
}

}  // namespace moebench
