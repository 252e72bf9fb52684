#include "harness/train/run_spec.h"

#include <set>
#include <stdexcept>

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
  j["knobs"] = knobs;
  j["sweep"] = sweep;
  return j;
}

RunSpec RunSpec::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("run spec: expected a JSON object");
  RunSpec s;
  const nlohmann::json defaults = s.ToJson();
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
  get("knobs", s.knobs);
  get("sweep", s.sweep);
  return s;
}

std::string RunSpec::CanonicalJson() const { return ToJson().dump(); }

std::string RunSpec::RunId() const { return Sha256Hex(CanonicalJson()).substr(0, 16); }

}  // namespace moebench
