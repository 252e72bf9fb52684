// The fully resolved configuration of one run. Its canonical JSON hashes to the run id, so
// the same run in two manifests is the same run. Execution details that do not change the
// result (database path, threads) live in RunEnv, outside the hash.
#pragma once

#include <cstdint>
#include <map>
#include <string>
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
  int64_t tokens_per_batch = 2048;
  double lr = 2e-3;
  int64_t warmup = 100;
  double clip_norm = 1.0;
  double dropout = 0.1;
  double label_smoothing = 0.1;
  int64_t vocab_size = 1000;
  int64_t num_experts = 0;  // 0: the size preset's
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
  std::map<std::string, std::string> knobs;  // method knobs, as given (defaults resolved too)
  std::string sweep;                         // sweep id, "" for a standalone run

  nlohmann::json ToJson() const;
  static RunSpec FromJson(const nlohmann::json& j);  // unknown keys are errors naming them
  std::string CanonicalJson() const;                 // sorted keys, no whitespace
  std::string RunId() const;                         // first 16 hex digits of its SHA-256
};

struct RunEnv {
  std::string db = "results/moebench.db";
  std::string run_dir;  // checkpoints; default: <db folder>/runs/<run id>
  int threads = 0;      // 0: all cores
  bool quiet = false;
};

}  // namespace moebench
