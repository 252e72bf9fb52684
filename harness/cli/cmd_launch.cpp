// `moebench launch --nproc N [--nodes-of K] -- COMMAND...`: N local ranks, torchrun-style.
#include <stdlib.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/comm/launcher.h"
#include "harness/store/store.h"
#include "harness/train/run_record.h"

namespace moebench {

void RegisterLaunchCommand(CLI::App& app) {
  auto opt = std::make_shared<LaunchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "launch",
      "start N local ranks of a command the way torchrun does (RANK, WORLD_SIZE, LOCAL_RANK, "
      "LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT); the first failure stops the others");
  cmd->add_option("--nproc", opt->nproc, "number of ranks")->required();
  cmd->add_option("--nodes-of", opt->ranks_per_node,
                  "emulate nodes of K ranks each (LOCAL_WORLD_SIZE = K); default: one node")
      ->capture_default_str();
  cmd->add_option("--master-port", opt->master_port, "rendezvous port (0: a free one)")
      ->capture_default_str();
  cmd->add_option("--grace", opt->grace_seconds,
                  "seconds between SIGTERM and SIGKILL for the other ranks after a failure")
      ->capture_default_str();
  cmd->add_option("command", opt->argv, "the command each rank runs (after --)")->required();
  cmd->callback([opt]() {
    // The ranks' writer (rank 0 of `moebench train`) says here which run it records, so that a
    // rank killed by a signal, which records nothing itself, still marks the run failed.
    std::string dir = (std::filesystem::temp_directory_path() / "moebench-launch-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) dir.clear();
    const std::string record_path = dir.empty() ? "" : dir + "/run.json";
    if (!dir.empty()) setenv("MOEBENCH_RUN_RECORD", record_path.c_str(), 1);
    LaunchResult r = Launch(*opt);
    const auto run = record_path.empty() ? std::nullopt : ReadLaunchRecord(record_path);
    if (!dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
    if (r.exit_code != 0) {
      std::cerr << "moebench launch: " << r.first_failure << std::endl;
      if (run) {
        try {
          Store store(run->db);
          const auto row = store.FindRun(run->run_id);
          if (row && row->id == run->run_id && row->status != RunStatus::kFinished &&
              row->error.rfind(r.first_failure, 0) != 0) {
            std::string error = r.first_failure;
            if (!row->error.empty()) error += "; " + row->error;
            store.SetRunStatus(run->run_id, RunStatus::kFailed, error, r.exit_code);
            std::cerr << "moebench launch: run " << run->run_id << " recorded as failed in "
                      << run->db << std::endl;
          }
        } catch (const std::exception& e) {
          std::cerr << "moebench launch: could not record run " << run->run_id
                    << " as failed: " << e.what() << std::endl;
        }
      }
      std::exit(r.exit_code);
    }
  });
}

}  // namespace moebench
