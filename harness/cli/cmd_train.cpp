// `moebench train`: one run from flags or a run-spec JSON, recorded in the database.
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/comm/dist_env.h"
#include "harness/comm/launcher.h"
#include "harness/store/store.h"
#include "harness/train/run_spec.h"
#include "harness/train/run_spec_check.h"
#include "harness/train/trainer.h"

namespace moebench {

namespace {

struct TrainArgs {
  RunSpec spec;
  RunEnv env;
  std::string run_spec_path;
  std::vector<std::string> sets;
  int world_size = 0;
  double grace_s = 10;
  bool print_spec = false;
};

RunSpec LoadSpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--run-spec: cannot open " + path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error("--run-spec " + path + ": invalid JSON: " + e.what());
  }
  try {
    return RunSpec::FromJson(j);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

// The train flag of each run-spec key (--ranks-per-node is an alias of --workers-per-node).
const std::map<std::string, std::string>& FlagToKey() {
  static const std::map<std::string, std::string> table = {
      {"--method", "method"},
      {"--size", "size"},
      {"--dataset", "dataset"},
      {"--langs", "langs"},
      {"--data-dir", "data_dir"},
      {"--seed", "seed"},
      {"--max-steps", "max_steps"},
      {"--tokens-per-batch", "tokens_per_batch"},
      {"--lr", "lr"},
      {"--warmup", "warmup"},
      {"--clip-norm", "clip_norm"},
      {"--dropout", "dropout"},
      {"--label-smoothing", "label_smoothing"},
      {"--vocab-size", "vocab_size"},
      {"--num-experts", "num_experts"},
      {"--eval-every", "eval_every"},
      {"--log-every", "log_every"},
      {"--checkpoint-every", "checkpoint_every"},
      {"--valid-sentences", "valid_sentences"},
      {"--eval-k", "eval_k"},
      {"--beam", "beam"},
      {"--length-penalty", "length_penalty"},
      {"--lang-temperature", "lang_temperature"},
      {"--workers", "workers"},
      {"--workers-per-node", "workers_per_node"},
      {"--ranks-per-node", "workers_per_node"},
      {"--intra-node-gbps", "intra_node_gbps"},
      {"--inter-node-gbps", "inter_node_gbps"},
      {"--intra-node-latency-us", "intra_node_latency_us"},
      {"--inter-node-latency-us", "inter_node_latency_us"},
      {"--device-profile", "device_profile"},
      {"--device-efficiency", "device_efficiency"},
      {"--comm-overlap", "comm_overlap"},
      {"--max-len-a", "max_len_a"},
      {"--max-len-b", "max_len_b"},
      {"--device", "device"},
      {"--precision", "precision"},
      {"--exchange", "exchange"}};
  return table;
}

// How a problem's key is named to the user: the flag (and key), or the key in the JSON file.
std::string SpecKeyName(const std::string& key, const std::string& spec_path) {
  if (key.rfind("knobs.", 0) == 0) return "--set " + key.substr(6);
  for (const auto& [flag, k] : FlagToKey()) {
    if (k == key && flag != "--ranks-per-node") {
      return spec_path.empty() ? flag + " (" + key + ")"
                               : flag + " or key '" + key + "' of " + spec_path;
    }
  }
  return spec_path.empty() ? key : "key '" + key + "' of " + spec_path;
}

}  // namespace

void RegisterTrainCommand(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  args->env.db = kDefaultDb;
  CLI::App* cmd = app.add_subcommand("train", "train one run and record it in the database");
  RunSpec& s = args->spec;
  cmd->add_option("--method", s.method, "routing method (see `moebench methods`)")
      ->capture_default_str();
  cmd->add_option("--size", s.size, "model size preset: tiny | small | base | large")
      ->capture_default_str();
  cmd->add_option("--dataset", s.dataset, "synthetic | files")->capture_default_str();
  cmd->add_option("--langs", s.langs, "target languages (default: the dataset's)")->delimiter(',');
  cmd->add_option("--data-dir", s.data_dir,
                  "folder of train/valid/test.<lang> files (dataset files)");
  cmd->add_option("--seed", s.seed, "seed of the model and routing randomness")
      ->capture_default_str();
  cmd->add_option("--max-steps", s.max_steps, "optimizer updates")->capture_default_str();
  cmd->add_option("--tokens-per-batch", s.tokens_per_batch, "padded tokens per batch")
      ->capture_default_str();
  cmd->add_option("--lr", s.lr, "peak learning rate (Adam)")->capture_default_str();
  cmd->add_option("--warmup", s.warmup, "linear warm-up steps, then inverse sqrt")
      ->capture_default_str();
  cmd->add_option("--clip-norm", s.clip_norm, "gradient clipping (global L2 norm)")
      ->capture_default_str();
  cmd->add_option("--dropout", s.dropout, "dropout")->capture_default_str();
  cmd->add_option("--label-smoothing", s.label_smoothing, "label smoothing")->capture_default_str();
  cmd->add_option("--vocab-size", s.vocab_size, "SentencePiece vocabulary size")
      ->capture_default_str();
  cmd->add_option("--num-experts", s.num_experts, "experts per MoE layer (0: the size's)")
      ->capture_default_str();
  cmd->add_option("--eval-every", s.eval_every, "validation every N steps")->capture_default_str();
  cmd->add_option("--log-every", s.log_every, "metrics every N steps")->capture_default_str();
  cmd->add_option("--checkpoint-every", s.checkpoint_every, "checkpoint every N steps")
      ->capture_default_str();
  cmd->add_option("--valid-sentences", s.valid_sentences,
                  "sentences decoded for validation BLEU (0: loss only)")
      ->capture_default_str();
  cmd->add_option("--eval-k", s.eval_k, "any-k evaluation: test BLEU at each k (e.g. 1,2,4)")
      ->delimiter(',');
  cmd->add_option("--beam", s.beam, "beam size for BLEU decoding (1: greedy)")
      ->capture_default_str();
  cmd->add_option("--length-penalty", s.length_penalty, "beam length penalty")
      ->capture_default_str();
  cmd->add_option("--lang-temperature", s.lang_temperature, "multilingual sampling temperature")
      ->capture_default_str();
  cmd->add_option("--workers", s.workers, "virtual expert-parallel workers bytes are counted for")
      ->capture_default_str();
  cmd->add_option("--workers-per-node", s.workers_per_node, "workers per node")
      ->capture_default_str();
  cmd->add_option("--exchange", s.exchange, "all-to-all format: padded | compact")
      ->capture_default_str();
  cmd->add_option("--set", args->sets, "method knob, key=value (repeatable)");
  cmd->add_option("--run-spec", args->run_spec_path,
                  "read the run spec from a JSON file (flags given too override it)");
  cmd->add_option("--world-size", args->world_size,
                  "ranks of a multi-process run (c10d, one rank per worker): started here with "
                  "`moebench launch`, or taken from torchrun/srun/mpirun variables");
  cmd->add_option("--ranks-per-node", s.workers_per_node,
                  "ranks per (emulated) node with --world-size (default: LOCAL_WORLD_SIZE, or "
                  "all on one node); same as --workers-per-node");
  cmd->add_option("--comm-timeout", args->env.comm_timeout_s,
                  "seconds before a collective waiting on a dead or hung rank fails")
      ->capture_default_str();
  cmd->add_option("--intra-node-gbps", s.intra_node_gbps,
                  "network model: per-rank bandwidth within a node (Gb/s)")
      ->capture_default_str();
  cmd->add_option("--inter-node-gbps", s.inter_node_gbps,
                  "network model: per-rank bandwidth between nodes (Gb/s)")
      ->capture_default_str();
  cmd->add_option("--intra-node-latency-us", s.intra_node_latency_us,
                  "network model: latency per message within a node (us)")
      ->capture_default_str();
  cmd->add_option("--inter-node-latency-us", s.inter_node_latency_us,
                  "network model: latency per message between nodes (us)")
      ->capture_default_str();
  cmd->add_option("--device-profile", s.device_profile,
                  "compute model: the GPU whose peak models compute time (v100-32gb, a100-80gb, "
                  "h100)")
      ->capture_default_str();
  cmd->add_option("--device-efficiency", s.device_efficiency,
                  "compute model: fraction of the device's peak a step reaches, in (0, 1]")
      ->capture_default_str();
  cmd->add_option("--comm-overlap", s.comm_overlap,
                  "compute model: fraction of the shorter of compute and communication hidden "
                  "behind the longer, in [0, 1]")
      ->capture_default_str();
  cmd->add_option("--max-len-a", s.max_len_a, "decoding: max target length = a * source + b")
      ->capture_default_str();
  cmd->add_option("--max-len-b", s.max_len_b, "decoding: max target length = a * source + b")
      ->capture_default_str();
  cmd->add_option("--device", s.device, "cpu | cuda (CUDA builds; rank r uses GPU LOCAL_RANK)")
      ->capture_default_str();
  cmd->add_option("--precision", s.precision,
                  "fp32 | bf16 (autocast: bf16 matmuls, fp32 weights, optimizer and routers)")
      ->capture_default_str();
  AddDbOption(*cmd, args->env.db);
  cmd->add_option("--run-dir", args->env.run_dir,
                  "checkpoint folder (default: <db folder>/runs/<run id>)");
  cmd->add_option(
         "--threads", args->env.threads,
         "intra-op threads (0: the CPUs this process may use, divided among its ranks here)")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->env.quiet, "no progress lines");
  cmd->add_flag("--print-spec", args->print_spec,
                "print the resolved run spec and its id, then exit");

  cmd->callback([args, cmd]() {
    RunSpec spec = args->spec;
    if (!args->run_spec_path.empty()) {
      RunSpec from_file = LoadSpecFile(args->run_spec_path);
      // Flags given explicitly override the file.
      nlohmann::json merged = from_file.ToJson();
      const nlohmann::json flags = spec.ToJson();
      const std::map<std::string, std::string>& flag_to_key = FlagToKey();
      for (const auto& [flag, key] : flag_to_key) {
        if (cmd->count(flag) > 0) merged[key] = flags[key];
      }
      spec = RunSpec::FromJson(merged);
    }
    for (const auto& [k, v] : ParseAssignments(args->sets, "--set")) spec.knobs[k] = v;
    // Multi-process runs: under a launcher the ranks come from its variables; with
    // --world-size N and no launcher, this process starts N ranks of itself and waits.
    const std::optional<DistEnv> dist = DetectDistEnv();
    if (args->world_size < 0) throw std::invalid_argument("--world-size must be >= 1");
    if (args->world_size == 0 && dist && dist->world_size > 1) args->world_size = dist->world_size;
    if (args->world_size > 1 || spec.world_size > 1) {
      const int n = args->world_size > 1 ? args->world_size : spec.world_size;
      const bool workers_given = cmd->count("--workers") > 0;
      if (workers_given && spec.workers != n) {
        throw std::invalid_argument("--workers " + std::to_string(spec.workers) +
                                    " differs from --world-size " + std::to_string(n) +
                                    " (with ranks, each rank is one worker)");
      }
      spec.world_size = n;
      spec.workers = n;
      const bool per_node_given =
          cmd->count("--workers-per-node") > 0 || cmd->count("--ranks-per-node") > 0;
      if (!per_node_given && args->run_spec_path.empty()) {
        spec.workers_per_node = dist ? dist->local_world_size : n;
      }
    }
    ResolveKnobs(spec);
    // Every bad value is refused before anything runs, all at once, naming its flag or key.
    const std::vector<SpecProblem> problems = CheckRunSpec(spec);
    if (!problems.empty()) {
      throw std::invalid_argument("invalid run spec:\n  " +
                                  FormatSpecProblems(problems, [&](const std::string& key) {
                                    return SpecKeyName(key, args->run_spec_path);
                                  }));
    }
    if (args->print_spec) {
      nlohmann::json out = spec.ToJson();
      std::cout << nlohmann::json{{"run_id", spec.RunId()}, {"spec", out}}.dump(2) << std::endl;
      return;
    }
    if (spec.world_size > 1 && !dist) {
      LaunchOptions lo;
      lo.nproc = spec.world_size;
      lo.ranks_per_node = spec.workers_per_node;
      lo.grace_seconds = args->grace_s;
      lo.argv = ProgramArgs();
      lo.argv[0] = SelfExecutable();
      const std::string run_id = spec.RunId();
      if (!args->env.quiet) {
        std::cerr << "[" << run_id << "] starting " << spec.world_size << " ranks ("
                  << spec.workers_per_node << " per node)" << std::endl;
      }
      LaunchResult lr = Launch(lo);
      if (lr.exit_code != 0) {
        // The ranks record their own errors; the launcher adds which rank failed first.
        Store store(args->env.db);
        std::string error = lr.first_failure;
        if (auto run = store.FindRun(run_id); run && run->id == run_id) {
          if (!run->error.empty()) error += "; " + run->error;
        }
        store.SetRunStatus(run_id, RunStatus::kFailed, error, lr.exit_code);
        throw std::runtime_error("run " + run_id + " failed: " + error);
      }
      std::cout << "run " << run_id << " finished on " << spec.world_size << " ranks; results in "
                << args->env.db << std::endl;
      return;
    }
    if (args->env.threads == 0) {
      args->env.threads = DefaultThreads(dist && spec.world_size > 1 ? dist->local_world_size : 1);
    }
    TrainResult r = TrainRun(spec, args->env);
    // Ranks of one run: only rank 0, which wrote the database, says where the results are.
    if (dist && spec.world_size > 1 && dist->rank != 0) return;
    if (r.steps == 0) {
      std::cout << "run " << r.run_id << " is already finished in " << args->env.db << std::endl;
      return;
    }
    std::cout << "run " << r.run_id << " finished: " << r.steps << " steps, valid loss "
              << FormatNumber(r.final_valid_loss) << ", valid BLEU "
              << FormatNumber(r.final_valid_bleu) << ", " << FormatNumber(r.tokens_per_second)
              << " tokens/s; results in " << args->env.db << std::endl;
  });
}

}  // namespace moebench
