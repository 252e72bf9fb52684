#include "harness/train/run_spec.h"

#include <sched.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <thread>

#include "harness/util/hash.h"

namespace moebench {

nlohmann::json RunSpec::ToJson() const {
  nlohmann::json j;
  j["method"] = method;
  j["size"] = size;
  j["dataset"] = dataset;
  j["langs"] = langs;
  j["data_dir"] = data_dir;
  j["seed"] = seed;
  j["max_steps"] = max_steps;
  j["tokens_per_batch"] = tokens_per_batch;
  j["lr"] = lr;
  j["warmup"] = warmup;
  j["clip_norm"] = clip_norm;
  j["dropout"] = dropout;
  j["label_smoothing"] = label_smoothing;
  j["vocab_size"] = vocab_size;
  j["num_experts"] = num_experts;
  j["eval_every"] = eval_every;
  j["log_every"] = log_every;
  j["checkpoint_every"] = checkpoint_every;
  j["valid_sentences"] = valid_sentences;
  j["eval_k"] = eval_k;
  j["beam"] = beam;
  j["length_penalty"] = length_penalty;
  j["lang_temperature"] = lang_temperature;
  j["workers"] = workers;
  j["workers_per_node"] = workers_per_node;
  j["exchange"] = exchange;
  // Fields added after the first release enter the JSON only when they differ from their
  // defaults, so the run ids of existing runs do not change.
  const RunSpec d{};
  auto add_if = [&](const char* key, const auto& v, const auto& def) {
    if (v != def) j[key] = v;
  };
  add_if("world_size", world_size, d.world_size);
  add_if("intra_node_gbps", intra_node_gbps, d.intra_node_gbps);
  add_if("inter_node_gbps", inter_node_gbps, d.inter_node_gbps);
  add_if("intra_node_latency_us", intra_node_latency_us, d.intra_node_latency_us);
  add_if("inter_node_latency_us", inter_node_latency_us, d.inter_node_latency_us);
  add_if("device_profile", device_profile, d.device_profile);
  add_if("device_efficiency", device_efficiency, d.device_efficiency);
  add_if("comm_overlap", comm_overlap, d.comm_overlap);
  add_if("max_len_a", max_len_a, d.max_len_a);
  add_if("max_len_b", max_len_b, d.max_len_b);
  add_if("device", device, d.device);
  add_if("precision", precision, d.precision);
  j["knobs"] = knobs;
  j["sweep"] = sweep;
  return j;
}

RunSpec RunSpec::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("run spec: expected a JSON object");
  RunSpec s;
  const nlohmann::json defaults = FieldDefaults();
  for (const auto& [key, value] : j.items()) {
    if (!defaults.contains(key)) {
      throw std::invalid_argument("run spec: unknown key '" + key + "'");
    }
  }
  auto get = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    try {
      j.at(key).get_to(field);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(std::string("run spec: key '") + key + "' has the wrong type (" +
                                  e.what() + ")");
    }
  };
  get("method", s.method);
  get("size", s.size);
  get("dataset", s.dataset);
  get("langs", s.langs);
  get("data_dir", s.data_dir);
  get("seed", s.seed);
  get("max_steps", s.max_steps);
  get("tokens_per_batch", s.tokens_per_batch);
  get("lr", s.lr);
  get("warmup", s.warmup);
  get("clip_norm", s.clip_norm);
  get("dropout", s.dropout);
  get("label_smoothing", s.label_smoothing);
  get("vocab_size", s.vocab_size);
  get("num_experts", s.num_experts);
  get("eval_every", s.eval_every);
  get("log_every", s.log_every);
  get("checkpoint_every", s.checkpoint_every);
  get("valid_sentences", s.valid_sentences);
  get("eval_k", s.eval_k);
  get("beam", s.beam);
  get("length_penalty", s.length_penalty);
  get("lang_temperature", s.lang_temperature);
  get("workers", s.workers);
  get("workers_per_node", s.workers_per_node);
  get("exchange", s.exchange);
  get("world_size", s.world_size);
  get("intra_node_gbps", s.intra_node_gbps);
  get("inter_node_gbps", s.inter_node_gbps);
  get("intra_node_latency_us", s.intra_node_latency_us);
  get("inter_node_latency_us", s.inter_node_latency_us);
  get("device_profile", s.device_profile);
  get("device_efficiency", s.device_efficiency);
  get("comm_overlap", s.comm_overlap);
  get("max_len_a", s.max_len_a);
  get("max_len_b", s.max_len_b);
  get("device", s.device);
  get("precision", s.precision);
  get("knobs", s.knobs);
  get("sweep", s.sweep);
  return s;
}

nlohmann::json RunSpec::FieldDefaults() {
  const RunSpec d{};
  nlohmann::json j = d.ToJson();
  j["world_size"] = d.world_size;
  j["intra_node_gbps"] = d.intra_node_gbps;
  j["inter_node_gbps"] = d.inter_node_gbps;
  j["intra_node_latency_us"] = d.intra_node_latency_us;
  j["inter_node_latency_us"] = d.inter_node_latency_us;
  j["device_profile"] = d.device_profile;
  j["device_efficiency"] = d.device_efficiency;
  j["comm_overlap"] = d.comm_overlap;
  j["max_len_a"] = d.max_len_a;
  j["max_len_b"] = d.max_len_b;
  j["device"] = d.device;
  j["precision"] = d.precision;
  return j;
}

int DefaultThreads(int local_ranks) {
  int cpus = static_cast<int>(std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  return std::max(1, cpus / std::max(1, local_ranks));
}

std::string RunSpec::CanonicalJson() const { return ToJson().dump(); }

std::string RunSpec::RunId() const { return Sha256Hex(CanonicalJson()).substr(0, 16); }

}  // namespace moebench
