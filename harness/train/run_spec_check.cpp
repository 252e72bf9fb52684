#include "harness/train/run_spec_check.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "harness/model/compute_model.h"
#include "harness/model/sizes.h"
#include "methods/method.h"

namespace moebench {

namespace {

// A value as the user wrote it: JSON prints NaN and infinities as null.
std::string Num(const nlohmann::json& v) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  }
  return v.dump();
}

}  // namespace

bool CheckSpecField(const std::string& field, const nlohmann::json& value, std::string* why) {
  static const std::set<std::string> kAtLeastOne = {"max_steps", "tokens_per_batch", "eval_every",
                                                    "log_every", "checkpoint_every", "vocab_size",
                                                    "workers",   "workers_per_node", "world_size"};
  static const std::set<std::string> kNonNegative = {"warmup", "valid_sentences", "num_experts"};
  if (field == "langs" || field == "eval_k") {
    const bool strings = field == "langs";
    for (const nlohmann::json& e : value) {
      if (e.is_string() != strings) {
        *why = std::string("expected a list of ") + (strings ? "strings" : "integers");
        return false;
      }
      if (!strings && e.get<int64_t>() < 1) {
        *why = "every k must be at least 1, got " + Num(e);
        return false;
      }
    }
  } else if (field == "dataset") {
    const std::string v = value.get<std::string>();
    if (v != "synthetic" && v != "files" && v != "l10n") {
      *why = "unknown dataset '" + v + "' (known: synthetic, files, l10n)";
      return false;
    }
  } else if (field == "device") {
    const std::string v = value.get<std::string>();
    if (v != "cpu" && v != "cuda") {
      *why = "unknown device '" + v + "' (known: cpu, cuda)";
      return false;
    }
  } else if (field == "precision") {
    const std::string v = value.get<std::string>();
    if (v != "fp32" && v != "bf16") {
      *why = "unknown precision '" + v + "' (known: fp32, bf16)";
      return false;
    }
  } else if (field == "exchange") {
    const std::string v = value.get<std::string>();
    if (v != "padded" && v != "compact") {
      *why = "unknown exchange format '" + v + "' (known: padded, compact)";
      return false;
    }
  } else if (kAtLeastOne.count(field) && value.get<int64_t>() < 1) {
    *why = "must be at least 1, got " + Num(value);
    return false;
  } else if (kNonNegative.count(field) && value.get<int64_t>() < 0) {
    *why = "must not be negative, got " + Num(value);
    return false;
  } else if ((field == "intra_node_gbps" || field == "inter_node_gbps") &&
             !(std::isfinite(value.get<double>()) && value.get<double>() > 0)) {
    *why = "must be a positive number of gigabits per second, got " + Num(value);
    return false;
  } else if (field == "device_profile") {
    try {
      FindDeviceProfile(value.get<std::string>());
    } catch (const std::invalid_argument& e) {
      *why = e.what();
      return false;
    }
  } else if (field == "device_efficiency" &&
             !(std::isfinite(value.get<double>()) && value.get<double>() > 0 &&
               value.get<double>() <= 1)) {
    *why = "must be a fraction of the peak in (0, 1], got " + Num(value);
    return false;
  } else if (field == "comm_overlap" && !(std::isfinite(value.get<double>()) &&
                                          value.get<double>() >= 0 && value.get<double>() <= 1)) {
    *why = "must be a fraction in [0, 1], got " + Num(value);
    return false;
  } else if ((field == "intra_node_latency_us" || field == "inter_node_latency_us") &&
             !(std::isfinite(value.get<double>()) && value.get<double>() >= 0)) {
    *why = "must be a number of microseconds >= 0, got " + Num(value);
    return false;
  } else if (field == "lr" && !(std::isfinite(value.get<double>()) && value.get<double>() > 0)) {
    *why = "must be a finite number > 0, got " + Num(value);
    return false;
  } else if ((field == "dropout" || field == "label_smoothing") &&
             !(value.get<double>() >= 0 && value.get<double>() < 1)) {
    *why = "must be in [0, 1), got " + Num(value);
    return false;
  } else if (field == "clip_norm" &&
             !(std::isfinite(value.get<double>()) && value.get<double>() > 0)) {
    *why = "must be a finite number > 0 (the largest gradient norm), got " + Num(value);
    return false;
  } else if (field == "beam" && value.get<int64_t>() < 1) {
    *why = "must be at least 1 (1 = greedy), got " + Num(value);
    return false;
  } else if ((field == "length_penalty" || field == "max_len_a") &&
             !(std::isfinite(value.get<double>()) && value.get<double>() >= 0)) {
    *why = "must be a finite number >= 0, got " + Num(value);
    return false;
  } else if (field == "max_len_b" && value.get<int64_t>() < 0) {
    *why = "must not be negative, got " + Num(value);
    return false;
  } else if (field == "lang_temperature" &&
             !(std::isfinite(value.get<double>()) && value.get<double>() > 0)) {
    *why = "must be a finite number > 0, got " + Num(value);
    return false;
  }
  return true;
}

std::vector<SpecProblem> CheckRunSpec(const RunSpec& spec) {
  std::vector<SpecProblem> out;
  // Every field, those the JSON leaves out at their defaults too.
  nlohmann::json full = RunSpec::FieldDefaults();
  const nlohmann::json given = spec.ToJson();
  for (auto it = given.begin(); it != given.end(); ++it) full[it.key()] = it.value();
  for (auto it = full.begin(); it != full.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& value = it.value();
    if (key == "knobs" || key == "sweep") continue;
    std::string why;
    try {
      if (!CheckSpecField(key, value, &why)) out.push_back({key, why});
    } catch (const nlohmann::json::exception& e) {
      out.push_back({key, std::string("wrong type (") + e.what() + ")"});
    }
  }
  for (SpecProblem& p : CheckSpecRelations(spec)) out.push_back(std::move(p));
  return out;
}

std::vector<SpecProblem> CheckSpecRelations(const RunSpec& spec) {
  std::vector<SpecProblem> out;
  if (spec.world_size > 1 && spec.workers != 1 && spec.workers != spec.world_size) {
    out.push_back({"workers", "with world_size " + std::to_string(spec.world_size) +
                                  " each rank is one worker: workers must be " +
                                  std::to_string(spec.world_size) + " or unset"});
  }
  // Relations that need the method and the model: the knobs' own checks, and counts that
  // cannot exceed the number of experts.
  int64_t experts = spec.num_experts;
  try {
    if (experts <= 0) experts = SizePreset(spec.size).num_experts;
  } catch (const std::exception& e) {
    out.push_back({"size", e.what()});
    return out;
  }
  std::unique_ptr<Method> method;
  try {
    method = MakeMethod(spec.method, spec.knobs);
  } catch (const std::exception& e) {
    out.push_back({spec.knobs.empty() ? "method" : "knobs", e.what()});
    return out;
  }
  const bool dense = method->DenseWidth(1, std::max<int64_t>(experts, 1)) > 0;
  if (!dense) {
    for (int64_t k : spec.eval_k) {
      if (k > experts) {
        out.push_back({"eval_k", "k = " + std::to_string(k) + " exceeds the " +
                                     std::to_string(experts) + " experts per MoE layer"});
      }
    }
    for (const std::string& name : method->KnobsBoundedByExperts()) {
      const int64_t v = method->knobs().GetInt(name);
      if (v > experts) {
        out.push_back({"knobs." + name, "must be at most the number of experts (" +
                                            std::to_string(experts) + "), got " +
                                            std::to_string(v)});
      }
    }
  }
  return out;
}

std::string FormatSpecProblems(const std::vector<SpecProblem>& problems,
                               const std::function<std::string(const std::string&)>& name) {
  std::string text;
  for (const SpecProblem& p : problems) {
    text += (text.empty() ? "" : "\n  ") + name(p.key) + ": " + p.message;
  }
  return text;
}

}  // namespace moebench
