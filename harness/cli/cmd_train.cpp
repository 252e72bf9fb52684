// `moebench train`: one run from flags or a run-spec JSON, recorded in the database.
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <variant>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/comm/dist_env.h"
#include "harness/comm/launcher.h"
#include "harness/spec/resolve.h"
#include "harness/spec/run_spec.h"
#include "harness/spec/run_spec_check.h"
#include "harness/store/store.h"
#include "harness/train/trainer.h"
#include "harness/util/process.h"

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
  bool list_fields = false;
};

// `*states_per_node`: whether the file gives workers_per_node (Note [Rank layout]).
RunSpec LoadSpecFile(const std::string& path, bool* states_per_node, BatchGiven* batch,
                     bool* file_accum) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--run-spec: cannot open " + path);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error("--run-spec " + path + ": invalid JSON: " + e.what());
  }
  *states_per_node = j.is_object() && j.contains("workers_per_node");
  // A resolved spec always has tokens_per_batch, and leaves grad_accum out at 1 (Note [GPU
  // batch defaults]: neither is resolved again, unless a flag replaces the batch).
  batch->tokens_per_batch = j.is_object() && j.contains("tokens_per_batch");
  batch->grad_accum = batch->tokens_per_batch || (j.is_object() && j.contains("grad_accum"));
  *file_accum = j.is_object() && j.contains("grad_accum");
  try {
    return RunSpec::FromJson(j);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

// The train flag of each run-spec key, from the field table (--ranks-per-node is an alias of
// --workers-per-node).
const std::map<std::string, std::string>& FlagToKey() {
  static const std::map<std::string, std::string> table = [] {
    std::map<std::string, std::string> out;
    for (const SpecField& f : RunSpecFields()) {
      if (f.flag != nullptr) out[f.flag] = f.key;
    }
    out["--ranks-per-node"] = "workers_per_node";
    return out;
  }();
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

// The flags of `train`: every run-spec field with a flag, from the field table (Note [Run spec
// fields]), then the ones that are not run-spec fields.
void AddTrainOptions(CLI::App* cmd, TrainArgs& args) {
  RunSpec& s = args.spec;
  for (const SpecField& f : RunSpecFields()) {
    if (f.flag == nullptr) continue;
    std::visit(
        [&](auto member) {
          CLI::Option* opt = cmd->add_option(f.flag, s.*member, f.help);
          using T = std::decay_t<decltype(s.*member)>;
          if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                        std::is_same_v<T, std::vector<int64_t>>) {
            opt->delimiter(',');
          } else {
            opt->capture_default_str();
          }
        },
        f.member);
  }
  cmd->add_option("--set", args.sets, "method knob, key=value (repeatable)");
  cmd->add_option("--run-spec", args.run_spec_path,
                  "read the run spec from a JSON file (flags given too override it)");
  cmd->add_option("--world-size", args.world_size,
                  "ranks of a multi-process run (c10d, one rank per worker): started here with "
                  "`moebench launch`, or taken from torchrun/srun/mpirun variables");
  cmd->add_option("--ranks-per-node", s.workers_per_node,
                  "ranks per (emulated) node with --world-size (default: LOCAL_WORLD_SIZE, or "
                  "all on one node); same as --workers-per-node");
  cmd->add_option("--comm-timeout", args.env.comm_timeout_s,
                  "seconds before a collective waiting on a dead or hung rank fails")
      ->capture_default_str();
  AddDbOption(*cmd, args.env.db);
  cmd->add_option("--run-dir", args.env.run_dir,
                  "checkpoint folder (default: <db folder>/runs/<run id>)");
  cmd->add_option(
         "--threads", args.env.threads,
         "intra-op threads (0: the CPUs this process may use, divided among its ranks here)")
      ->capture_default_str();
  cmd->add_flag("--quiet", args.env.quiet, "no progress lines");
  cmd->add_flag("--print-spec", args.print_spec,
                "print the resolved run spec and its id, then exit");
  cmd->add_flag("--list-fields", args.list_fields,
                "print the run spec's fields (key, flag, manifest section, default, help) as "
                "JSON, then exit");
}

// `train --list-fields`: the field table as JSON.
void PrintFieldList() {
  const nlohmann::json defaults = RunSpec::FieldDefaults();
  nlohmann::json out = nlohmann::json::array();
  for (const SpecField& f : RunSpecFields()) {
    out.push_back({{"key", f.key},
                   {"flag", f.flag != nullptr ? f.flag : ""},
                   {"section", f.section},
                   {"default", defaults.at(f.key)},
                   {"in_json_at_default", f.in_json_at_default},
                   {"help", f.help}});
  }
  std::cout << out.dump(2) << std::endl;
}

// The run spec from the flags, the --run-spec file (flags given explicitly override it) and
// --set, and the launcher's rank variables in `dist`, with the rank layout resolved (Note [Rank
// layout]) and every value checked: every bad value is refused before anything runs, all at once,
// naming its flag or key.
RunSpec ResolveTrainSpec(TrainArgs& args, const CLI::App& cmd, std::optional<DistEnv>& dist) {
  RunSpec spec = args.spec;
  bool file_states_per_node = false;
  BatchGiven batch;
  bool file_accum = false;  // the file has grad_accum itself
  if (!args.run_spec_path.empty()) {
    RunSpec from_file =
        LoadSpecFile(args.run_spec_path, &file_states_per_node, &batch, &file_accum);
    nlohmann::json merged = from_file.ToJson();
    nlohmann::json flags = RunSpec::FieldDefaults();  // a flag at its default is given too
    const nlohmann::json given = spec.ToJson();
    for (const auto& [key, value] : given.items()) flags[key] = value;
    for (const auto& [flag, key] : FlagToKey()) {
      if (cmd.count(flag) > 0) merged[key] = flags[key];
    }
    spec = RunSpec::FromJson(merged);
  }
  for (const auto& [k, v] : ParseAssignments(args.sets, "--set")) spec.knobs[k] = v;
  // Multi-process runs: under a launcher the ranks come from its variables; with
  // --world-size N and no launcher, this process starts N ranks of itself and waits.
  dist = DetectDistEnv();
  if (args.world_size < 0) throw std::invalid_argument("--world-size must be >= 1");
  if (args.world_size == 0 && dist && dist->world_size > 1) args.world_size = dist->world_size;
  if (args.world_size > 1) spec.world_size = args.world_size;
  // Note [Rank layout]; a run-spec file states its own layout when it has the key.
  LayoutGiven given;
  given.workers = cmd.count("--workers") > 0;
  given.workers_per_node = cmd.count("--workers-per-node") > 0 ||
                           cmd.count("--ranks-per-node") > 0 || file_states_per_node;
  given.workers_name = "--workers";
  given.world_size_name = "--world-size";
  std::optional<int> local;
  if (dist) local = dist->local_world_size;
  ResolveLayout(spec, given, local);
  // --tokens-per-batch over a file's batch: the micro-batches follow it, unless stated.
  if (cmd.count("--tokens-per-batch") > 0) {
    batch.tokens_per_batch = true;
    batch.grad_accum = file_accum;
  }
  batch.grad_accum = batch.grad_accum || cmd.count("--grad-accum") > 0;
  ResolveBatch(spec, batch);
  ResolveKnobs(spec);
  const std::vector<SpecProblem> problems = CheckRunSpec(spec);
  if (!problems.empty()) {
    throw std::invalid_argument("invalid run spec:\n  " +
                                FormatSpecProblems(problems, [&](const std::string& key) {
                                  return SpecKeyName(key, args.run_spec_path);
                                }));
  }
  return spec;
}

// `train --world-size N` without a launcher: starts N ranks of this program (Note [Launcher])
// and waits; a failed rank marks the run failed, naming the rank that failed first.
void TrainOnRanksStartedHere(const RunSpec& spec, const TrainArgs& args) {
  LaunchOptions lo;
  lo.nproc = spec.world_size;
  lo.ranks_per_node = spec.workers_per_node;
  lo.grace_seconds = args.grace_s;
  lo.argv = ProgramArgs();
  lo.argv[0] = OwnExecutablePath();
  if (lo.argv[0].empty()) {
    throw std::runtime_error("--world-size: cannot find this program's path to start its ranks");
  }
  const std::string run_id = spec.RunId();
  if (!args.env.quiet) {
    std::cerr << "[" << run_id << "] starting " << spec.world_size << " ranks ("
              << spec.workers_per_node << " per node)" << std::endl;
  }
  LaunchResult lr = Launch(lo);
  if (lr.exit_code != 0) {
    // The ranks record their own errors; the launcher adds which rank failed first.
    Store store(args.env.db);
    std::string error = lr.first_failure;
    if (auto run = store.FindRun(run_id); run && run->id == run_id) {
      if (!run->error.empty()) error += "; " + run->error;
    }
    store.SetRunStatus(run_id, RunStatus::kFailed, error, lr.exit_code);
    throw std::runtime_error("run " + run_id + " failed: " + error);
  }
  std::cout << "run " << run_id << " finished on " << spec.world_size << " ranks; results in "
            << args.env.db << std::endl;
}

void RunTrainCommand(TrainArgs& args, const CLI::App& cmd) {
  if (args.list_fields) {
    PrintFieldList();
    return;
  }
  std::optional<DistEnv> dist;
  const RunSpec spec = ResolveTrainSpec(args, cmd, dist);
  if (args.print_spec) {
    nlohmann::json out = spec.ToJson();
    std::cout << nlohmann::json{{"run_id", spec.RunId()}, {"spec", out}}.dump(2) << std::endl;
    return;
  }
  if (spec.world_size > 1 && !dist) {
    TrainOnRanksStartedHere(spec, args);
    return;
  }
  if (args.env.threads == 0) {
    args.env.threads = DefaultThreads(dist && spec.world_size > 1 ? dist->local_world_size : 1);
  }
  TrainResult r = TrainRun(spec, args.env);
  // Ranks of one run: only rank 0, which wrote the database, says where the results are.
  if (dist && spec.world_size > 1 && dist->rank != 0) return;
  if (r.steps == 0) {
    std::cout << "run " << r.run_id << " is already finished in " << args.env.db << std::endl;
    return;
  }
  std::cout << "run " << r.run_id << " finished: " << r.steps << " steps, valid loss "
            << FormatNumber(r.final_valid_loss) << ", valid BLEU "
            << FormatNumber(r.final_valid_bleu) << ", " << FormatNumber(r.tokens_per_second)
            << " tokens/s; results in " << args.env.db << std::endl;
}

}  // namespace

void RegisterTrainCommand(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  args->env.db = kDefaultDb;
  CLI::App* cmd = app.add_subcommand("train", "train one run and record it in the database");
  AddTrainOptions(cmd, *args);
  cmd->callback([args, cmd]() { RunTrainCommand(*args, *cmd); });
}

}  // namespace moebench
