// moebench: the command-line entry point. Each subcommand lives in its own cmd_*.cpp.
#include <malloc.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/cli/cmd_bleu.h"
#include "harness/comm/c10d_comm.h"
#include "harness/comm/launcher.h"
#include "harness/error_text.h"
#include "harness/torch_compat.h"
#include "harness/util/process.h"

namespace {

// See docs/PERFORMANCE.md ("Thread spinning"): OpenMP and OpenBLAS threads busy-wait after each
// parallel region unless told otherwise, and both read their settings when the libraries load.
// So the process re-executes itself once with them set (keeping any value the user chose).
void EnsureRuntimeEnvironment(char** argv) {
  if (std::getenv("MOEBENCH_ENV_READY") != nullptr) return;
  setenv("MOEBENCH_ENV_READY", "1", 1);
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
  moebench::ReExecuteSelf(argv);  // returns only on failure: then go on as we are
}

// Keep freed memory in the heap: first touch of fresh pages costs ~12 us per 4 KiB here.
void TuneAllocator() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

// `moebench --version`: what this binary was built with (the e2e tests that need Gloo ranks
// read it to skip on a CUDA build that has none).
std::string BuildDescription() {
  auto yes_no = [](bool b) { return b ? "yes" : "no"; };
  return std::string("moebench (LibTorch ") + moebench::compat::TorchVersion() +
         "; cuda: " + yes_no(moebench::C10dHasNccl()) +
         "; gloo: " + yes_no(moebench::C10dHasGloo()) +
         "; nccl: " + yes_no(moebench::C10dHasNccl()) + ")";
}

}  // namespace

int main(int argc, char** argv) {
  EnsureRuntimeEnvironment(argv);
  TuneAllocator();
  moebench::SetProgramArgs(argc, argv);
  CLI::App app{"moebench: compare Mixture-of-Experts routing methods on machine translation"};
  app.require_subcommand(1);
  app.set_version_flag("--version", BuildDescription());
  moebench::RegisterTrainCommand(app);
  moebench::RegisterLaunchCommand(app);
  moebench::RegisterInspectCommands(app);
  moebench::RegisterMethodsCommand(app);
  moebench::RegisterDataCommand(app);
  moebench::RegisterRouteCommand(app);
  moebench::RegisterSweepCommands(app);
  moebench::RegisterBleuCommand(app);
  moebench::RegisterReportCommand(app);
  moebench::RegisterCompareCommand(app);
  moebench::RegisterDiffCommand(app);
  moebench::RegisterBestCommand(app);
  moebench::RegisterExportCommand(app);
  moebench::RegisterCollectCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const moebench::CollectiveError& e) {
    // Most likely another rank's failure: the launcher names that rank (Note [Which rank
    // failed]).
    std::cerr << "moebench: error: " << e.what() << std::endl;
    return moebench::kExitCollectiveFailed;
  } catch (const std::exception& e) {
    std::cerr << "moebench: error: " << moebench::ErrorText(e) << std::endl;
    return 1;
  }
  return 0;
}
