// The fully resolved configuration of one run. Its canonical JSON hashes to the run id, so
// the same run in two manifests is the same run. Execution details that do not change the
// result (database path, threads) live in RunEnv, outside the hash.
//
// Every field is declared once more, in the field table (RunSpecFields, run_spec.cpp): its
// JSON and manifest key, its `train` flag and help, its manifest section, whether it enters
// the JSON at its default, and the rule its values obey. JSON in and out, the `train` flags,
// the manifest's sections and the validation (run_spec_check.h) are all driven from it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace moebench {

struct RunSpec {
  std::string method = "switch";
  std::string size = "tiny";
  std::string dataset = "synthetic";  // synthetic | files | l10n
  std::vector<std::string> langs;     // empty: the dataset's default languages
  std::string data_dir;               // `files` datasets: the folder of train.en / train.xx ...
  int64_t seed = 1;
  int64_t max_steps = 200;
  // Micro-batches per step (Note [Gradient accumulation] in harness/train/expert_parallel.h).
  int64_t grad_accum = 1;
  int64_t tokens_per_batch = 2048;
  double lr = 2e-3;
  int64_t warmup = 100;
  double clip_norm = 1.0;
  double dropout = 0.1;
  double label_smoothing = 0.1;
  int64_t vocab_size = 1000;
  int64_t num_experts = 0;  // 0: the size preset's
  // Shared and fine-grained experts (Note [Shared and fine-grained experts] in
  // harness/model/expert_layout.h): K_s always-active experts, and each expert split in m.
  int64_t shared_experts = 0;
  int64_t expert_granularity = 1;
  int64_t eval_every = 100;
  int64_t log_every = 10;
  int64_t checkpoint_every = 100;
  int64_t valid_sentences = 200;  // greedy-decoded for validation BLEU (0: loss only)
  std::vector<int64_t> eval_k;    // any-k evaluation: test BLEU at each k experts per token
  int64_t beam = 1;               // decoding for BLEU: 1 = greedy
  double length_penalty = 1.0;
  double lang_temperature = 1.0;  // multilingual sampling: p(lang) ~ (n_lang / n)^(1/T)
  int workers = 1;
  int workers_per_node = 1;
  std::string exchange = "padded";
  // Real ranks (c10d process group) instead of virtual workers: 1 = one process plays
  // `workers`; N > 1 = N processes, one per worker (workers == N).
  int world_size = 1;
  // Network model (Note [Network model]): link parameters that turn counted bytes into a
  // modeled communication time. Defaults: NVLink-class within a node, 100 Gb/s
  // InfiniBand-class between nodes.
  double intra_node_gbps = 1200;     // gigabits per second per rank
  double inter_node_gbps = 100;      // gigabits per second per rank
  double intra_node_latency_us = 2;  // per message
  double inter_node_latency_us = 5;
  // The NIC a node's ranks share for off-node traffic (Gb/s per direction; 0: none, every
  // rank's inter-node link on its own). Set it to a cluster's per-node InfiniBand figure.
  double node_nic_gbps = 0;
  // Compute model (Note [Compute model] in harness/model/compute_model.h): the GPU whose peak
  // turns counted FLOPs into a modeled compute time, the fraction of that peak reached, and
  // the fraction of the shorter of compute and communication hidden behind the longer.
  std::string device_profile = "v100-32gb";  // v100-32gb | a100-80gb | h100
  double device_efficiency = 0.4;
  double comm_overlap = 0;
  // Decoding for BLEU: max target length = max_len_a * source length + max_len_b.
  double max_len_a = 1.5;
  int64_t max_len_b = 10;
  // Where the run computes (Note [Device and precision] in harness/train/device.h):
  // "cpu" | "cuda" (CUDA builds: rank r of a node uses GPU LOCAL_RANK). precision "fp32" |
  // "bf16" (bf16 autocast of forward and loss; fp32 master weights, optimizer and routers).
  std::string device = "cpu";
  std::string precision = "fp32";
  // The MoE layers' training path (Note [Static-shape path] in harness/moe/static_path.cpp):
  // "dynamic" | "static" (capacity-bounded routing and padded exchange, shapes fixed before
  // the step, no host reads; on one process or on ranks).
  std::string moe_path = "dynamic";
  // Note [Training step graphs] (harness/train/step_graphs.cpp): "off" | "on" (batches padded to
  // a few shapes, each shape's step captured in a CUDA graph after a checked warm-up and
  // replayed; on the CPU the same steps run eagerly). Needs moe_path static; on one process or
  // on ranks (every rank pads its share to the whole batch's shape).
  std::string cuda_graph = "off";
  std::map<std::string, std::string> knobs;  // method knobs, as given (defaults resolved too)
  std::string sweep;                         // sweep id, "" for a standalone run

  nlohmann::json ToJson() const;
  static RunSpec FromJson(const nlohmann::json& j);  // unknown keys are errors naming them
  // Every field with its default, those ToJson leaves out at their defaults included.
  static nlohmann::json FieldDefaults();
  std::string CanonicalJson() const;  // sorted keys, no whitespace
  std::string RunId() const;          // first 16 hex digits of its SHA-256
};

// One row of the field table. `knobs` and `sweep` are not in it: knobs come from `--set` and
// the manifest's method tables, the sweep tag from the runner.
struct SpecField {
  using Member =
      std::variant<std::string RunSpec::*, int64_t RunSpec::*, int RunSpec::*, double RunSpec::*,
                   std::vector<std::string> RunSpec::*, std::vector<int64_t> RunSpec::*>;
  const char* key;      // JSON and manifest key
  const char* flag;     // `moebench train` flag
  const char* section;  // manifest section: data | model | topology | train; "" = per run
  const char* help;
  // false: written to the JSON only when it differs from its default (fields added after the
  // first release, so that the ids of runs made before them do not change).
  bool in_json_at_default;
  Member member;
  // The rule for a value (given as JSON): false with `why` (the allowed range and the value).
  bool (*check)(const nlohmann::json& value, std::string* why);
};

// In the order `train --help` lists them.
const std::vector<SpecField>& RunSpecFields();
// nullptr when `key` names no field.
const SpecField* FindSpecField(const std::string& key);

struct RunEnv {
  std::string db = "results/moebench.db";
  std::string run_dir;          // checkpoints; default: <db folder>/runs/<run id>
  int threads = 0;              // 0: DefaultThreads (the usable CPUs, divided among the ranks)
  double comm_timeout_s = 300;  // c10d rendezvous and collectives (Note [Rank environment])
  bool quiet = false;
};

// `--threads 0`: the CPUs this process may use (sched_getaffinity: a Slurm task's or taskset's
// CPUs, not the machine's), divided among the `local_ranks` ranks on this machine; at least 1.
int DefaultThreads(int local_ranks);

}  // namespace moebench
