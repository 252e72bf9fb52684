#include "harness/spec/run_spec.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "harness/model/compute_model.h"
#include "harness/util/hash.h"

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

bool Fail(std::string* why, const std::string& text) {
  *why = text;
  return false;
}

// ---- the rules ----------------------------------------------------------------------------

bool Any(const nlohmann::json&, std::string*) { return true; }

bool AtLeastOne(const nlohmann::json& v, std::string* why) {
  return v.get<int64_t>() >= 1 || Fail(why, "must be at least 1, got " + Num(v));
}

bool NonNegativeInt(const nlohmann::json& v, std::string* why) {
  return v.get<int64_t>() >= 0 || Fail(why, "must not be negative, got " + Num(v));
}

bool FinitePositive(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d > 0) || Fail(why, "must be a finite number > 0, got " + Num(v));
}

bool FiniteNonNegative(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d >= 0) || Fail(why, "must be a finite number >= 0, got " + Num(v));
}

bool UnitInterval(const nlohmann::json& v, std::string* why) {  // [0, 1)
  const double d = v.get<double>();
  return (d >= 0 && d < 1) || Fail(why, "must be in [0, 1), got " + Num(v));
}

bool OneOf(const nlohmann::json& v, std::string* why, const char* what,
           std::initializer_list<const char*> known) {
  const std::string s = v.get<std::string>();
  std::string list;
  for (const char* k : known) {
    if (s == k) return true;
    list += (list.empty() ? "" : ", ") + std::string(k);
  }
  return Fail(why, "unknown " + std::string(what) + " '" + s + "' (known: " + list + ")");
}

bool Langs(const nlohmann::json& v, std::string* why) {
  for (const nlohmann::json& e : v) {
    if (!e.is_string()) return Fail(why, "expected a list of strings");
  }
  return true;
}

bool EvalK(const nlohmann::json& v, std::string* why) {
  for (const nlohmann::json& e : v) {
    if (!e.is_number_integer()) return Fail(why, "expected a list of integers");
    if (e.get<int64_t>() < 1) return Fail(why, "every k must be at least 1, got " + Num(e));
  }
  return true;
}

bool Dataset(const nlohmann::json& v, std::string* why) {
  return OneOf(v, why, "dataset", {"synthetic", "files", "l10n"});
}
bool Device(const nlohmann::json& v, std::string* why) {
  return OneOf(v, why, "device", {"cpu", "cuda"});
}
bool Precision(const nlohmann::json& v, std::string* why) {
  return OneOf(v, why, "precision", {"fp32", "bf16"});
}
bool Exchange(const nlohmann::json& v, std::string* why) {
  return OneOf(v, why, "exchange format", {"padded", "compact"});
}
bool MoePath(const nlohmann::json& v, std::string* why) {
  return OneOf(v, why, "MoE layer path", {"dynamic", "static"});
}

bool OffOn(const nlohmann::json& v, std::string* why) {
  return OneOf(v, why, "setting", {"off", "on"});
}

bool Gbps(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d > 0) ||
         Fail(why, "must be a positive number of gigabits per second, got " + Num(v));
}

bool NicGbps(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d >= 0) ||
         Fail(why, "must be a number of gigabits per second >= 0 (0: no shared node NIC), got " +
                       Num(v));
}

bool LatencyUs(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d >= 0) ||
         Fail(why, "must be a number of microseconds >= 0, got " + Num(v));
}

bool Profile(const nlohmann::json& v, std::string* why) {
  try {
    FindDeviceProfile(v.get<std::string>());
  } catch (const std::invalid_argument& e) {
    return Fail(why, e.what());
  }
  return true;
}

bool Efficiency(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d > 0 && d <= 1) ||
         Fail(why, "must be a fraction of the peak in (0, 1], got " + Num(v));
}

bool Overlap(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d >= 0 && d <= 1) ||
         Fail(why, "must be a fraction in [0, 1], got " + Num(v));
}

bool ClipNorm(const nlohmann::json& v, std::string* why) {
  const double d = v.get<double>();
  return (std::isfinite(d) && d > 0) ||
         Fail(why, "must be a finite number > 0 (the largest gradient norm), got " + Num(v));
}

bool Beam(const nlohmann::json& v, std::string* why) {
  return v.get<int64_t>() >= 1 || Fail(why, "must be at least 1 (1 = greedy), got " + Num(v));
}

using R = RunSpec;

}  // namespace

// Note [Run spec fields]: the one list of the run spec's fields. Adding a field means a member
// of RunSpec and a row here (with in_json_at_default = false, so existing run ids stay); the
// JSON, the `train` flag, the manifest section and the validation follow.
const std::vector<SpecField>& RunSpecFields() {
  static const std::vector<SpecField> fields = {
      {"method", "--method", "", "routing method (see `moebench methods`)", true, &R::method, Any},
      {"size", "--size", "", "model size preset: tiny | small | base | large", true, &R::size, Any},
      {"dataset", "--dataset", "data", "synthetic | files | l10n", true, &R::dataset, Dataset},
      {"langs", "--langs", "data", "target languages (default: the dataset's)", true, &R::langs,
       Langs},
      {"data_dir", "--data-dir", "data", "folder of train/valid/test.<lang> files (dataset files)",
       true, &R::data_dir, Any},
      {"seed", "--seed", "", "seed of the model and routing randomness", true, &R::seed, Any},
      {"max_steps", "--max-steps", "train", "optimizer updates", true, &R::max_steps, AtLeastOne},
      {"tokens_per_batch", "--tokens-per-batch", "train", "padded tokens per batch", true,
       &R::tokens_per_batch, AtLeastOne},
      {"lr", "--lr", "train", "peak learning rate (Adam)", true, &R::lr, FinitePositive},
      {"warmup", "--warmup", "train", "linear warm-up steps, then inverse sqrt", true, &R::warmup,
       NonNegativeInt},
      {"clip_norm", "--clip-norm", "train", "gradient clipping (global L2 norm)", true,
       &R::clip_norm, ClipNorm},
      {"dropout", "--dropout", "train", "dropout", true, &R::dropout, UnitInterval},
      {"label_smoothing", "--label-smoothing", "train", "label smoothing", true,
       &R::label_smoothing, UnitInterval},
      {"vocab_size", "--vocab-size", "data", "SentencePiece vocabulary size", true, &R::vocab_size,
       AtLeastOne},
      {"num_experts", "--num-experts", "model", "experts per MoE layer (0: the size's)", true,
       &R::num_experts, NonNegativeInt},
      {"eval_every", "--eval-every", "train", "validation every N steps", true, &R::eval_every,
       AtLeastOne},
      {"log_every", "--log-every", "train", "metrics every N steps", true, &R::log_every,
       AtLeastOne},
      {"checkpoint_every", "--checkpoint-every", "train", "checkpoint every N steps", true,
       &R::checkpoint_every, AtLeastOne},
      {"valid_sentences", "--valid-sentences", "train",
       "sentences decoded for validation BLEU (0: loss only)", true, &R::valid_sentences,
       NonNegativeInt},
      {"eval_k", "--eval-k", "train", "any-k evaluation: test BLEU at each k (e.g. 1,2,4)", true,
       &R::eval_k, EvalK},
      {"beam", "--beam", "train", "beam size for BLEU decoding (1: greedy)", true, &R::beam, Beam},
      {"length_penalty", "--length-penalty", "train", "beam length penalty", true,
       &R::length_penalty, FiniteNonNegative},
      {"lang_temperature", "--lang-temperature", "data", "multilingual sampling temperature", true,
       &R::lang_temperature, FinitePositive},
      {"workers", "--workers", "topology", "virtual expert-parallel workers bytes are counted for",
       true, &R::workers, AtLeastOne},
      {"workers_per_node", "--workers-per-node", "topology",
       "workers per node (default: every worker on one node)", true, &R::workers_per_node,
       AtLeastOne},
      {"exchange", "--exchange", "topology", "all-to-all format: padded | compact", true,
       &R::exchange, Exchange},
      // Added after the first release: in the JSON only when not at their defaults.
      {"world_size", nullptr, "topology",
       "ranks of a multi-process run (c10d, one rank per worker)", false, &R::world_size,
       AtLeastOne},
      {"intra_node_gbps", "--intra-node-gbps", "topology",
       "network model: per-rank bandwidth within a node (Gb/s)", false, &R::intra_node_gbps, Gbps},
      {"inter_node_gbps", "--inter-node-gbps", "topology",
       "network model: per-rank bandwidth between nodes (Gb/s)", false, &R::inter_node_gbps, Gbps},
      {"intra_node_latency_us", "--intra-node-latency-us", "topology",
       "network model: latency per message within a node (us)", false, &R::intra_node_latency_us,
       LatencyUs},
      {"inter_node_latency_us", "--inter-node-latency-us", "topology",
       "network model: latency per message between nodes (us)", false, &R::inter_node_latency_us,
       LatencyUs},
      {"node_nic_gbps", "--node-nic-gbps", "topology",
       "network model: NIC bandwidth a node's ranks share off-node (Gb/s; 0: none)", false,
       &R::node_nic_gbps, NicGbps},
      {"device_profile", "--device-profile", "topology",
       "compute model: the GPU whose peak models compute time (v100-32gb, a100-80gb, h100)", false,
       &R::device_profile, Profile},
      {"device_efficiency", "--device-efficiency", "topology",
       "compute model: fraction of the device's peak a step reaches, in (0, 1]", false,
       &R::device_efficiency, Efficiency},
      {"comm_overlap", "--comm-overlap", "topology",
       "compute model: fraction of the shorter of compute and communication hidden behind the "
       "longer, in [0, 1]",
       false, &R::comm_overlap, Overlap},
      {"max_len_a", "--max-len-a", "train", "decoding: max target length = a * source + b", false,
       &R::max_len_a, FiniteNonNegative},
      {"max_len_b", "--max-len-b", "train", "decoding: max target length = a * source + b", false,
       &R::max_len_b, NonNegativeInt},
      {"device", "--device", "train", "cpu | cuda (CUDA builds; rank r uses GPU LOCAL_RANK)", false,
       &R::device, Device},
      {"precision", "--precision", "train",
       "fp32 | bf16 (autocast: bf16 matmuls, fp32 weights, optimizer and routers)", false,
       &R::precision, Precision},
      {"shared_experts", "--shared-experts", "model",
       "shared experts beside the routed ones, every token through them (token-choice methods; "
       "DeepSeekMoE)",
       false, &R::shared_experts, NonNegativeInt},
      {"expert_granularity", "--expert-granularity", "model",
       "split each expert into m of width d_ff/m: m*E routed, m*k - shared_experts per token "
       "(token-choice methods; DeepSeekMoE)",
       false, &R::expert_granularity, AtLeastOne},
      {"grad_accum", "--grad-accum", "train",
       "micro-batches per optimizer step (gradient accumulation): the step's tokens_per_batch "
       "run as this many forward/backward passes, gradients summed",
       false, &R::grad_accum, AtLeastOne},
      {"moe_path", "--moe-path", "train",
       "MoE layers in training: dynamic (split sizes read each step) | static (fixed shapes, no "
       "host reads: capacity-bounded routing, padded exchange)",
       false, &R::moe_path, MoePath},
      {"cuda_graph", "--cuda-graph", "train",
       "off | on: each step's batch padded to one of a few shapes and the step captured in a "
       "CUDA graph per shape, replayed (moe_path static; on the CPU the same steps run eagerly)",
       false, &R::cuda_graph, OffOn},
  };
  return fields;
}

const SpecField* FindSpecField(const std::string& key) {
  for (const SpecField& f : RunSpecFields()) {
    if (key == f.key) return &f;
  }
  return nullptr;
}

nlohmann::json RunSpec::ToJson() const {
  nlohmann::json j;
  static const RunSpec d{};
  for (const SpecField& f : RunSpecFields()) {
    std::visit(
        [&](auto member) {
          if (f.in_json_at_default || this->*member != d.*member) j[f.key] = this->*member;
        },
        f.member);
  }
  j["knobs"] = knobs;
  j["sweep"] = sweep;
  return j;
}

RunSpec RunSpec::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("run spec: expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (FindSpecField(key) == nullptr && key != "knobs" && key != "sweep") {
      throw std::invalid_argument("run spec: unknown key '" + key + "'");
    }
  }
  RunSpec s;
  auto get = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    try {
      j.at(key).get_to(field);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(std::string("run spec: key '") + key + "' has the wrong type (" +
                                  e.what() + ")");
    }
  };
  for (const SpecField& f : RunSpecFields()) {
    std::visit([&](auto member) { get(f.key, s.*member); }, f.member);
  }
  get("knobs", s.knobs);
  get("sweep", s.sweep);
  return s;
}

nlohmann::json RunSpec::FieldDefaults() {
  const RunSpec d{};
  nlohmann::json j;
  for (const SpecField& f : RunSpecFields()) {
    std::visit([&](auto member) { j[f.key] = d.*member; }, f.member);
  }
  j["knobs"] = d.knobs;
  j["sweep"] = d.sweep;
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
