// `moebench launch --nproc N [--nodes-of K] -- COMMAND...`: N local ranks, torchrun-style.
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/comm/launcher.h"

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
    LaunchResult r = Launch(*opt);
    if (r.exit_code != 0) {
      std::cerr << "moebench launch: " << r.first_failure << std::endl;
      std::exit(r.exit_code);
    }
  });
}

}  // namespace moebench
