// `moebench collect DIR --db PATH`: merges the per-run databases under a folder (a Slurm array's
// or `sweep --per-run-db`'s) into one (harness/sweep/collect.h).
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/store/store.h"
#include "harness/sweep/collect.h"

namespace moebench {

void RegisterCollectCommand(CLI::App& app) {
  struct CollectArgs {
    std::string dir, db = kDefaultDb;
  };
  auto c = std::make_shared<CollectArgs>();
  CLI::App* collect = app.add_subcommand(
      "collect", "merge the per-run databases under a folder (Slurm, --per-run-db) into one");
  collect->add_option("dir", c->dir, "a sweep folder (or any folder of *.db files)")->required();
  AddDbOption(*collect, c->db);
  collect->callback([c]() {
    Store target(c->db);
    const CollectStats s = CollectDatabases(c->dir, target);
    std::cout << "collected " << s.databases << " databases into " << c->db << ": " << s.runs_taken
              << " runs copied, " << s.runs_kept << " already there as far along, " << s.sweeps
              << " sweeps\n";
    if (!s.unfinished.empty()) {
      std::cout << s.unfinished.size() << " runs are not finished yet (collect again later)\n";
    }
    if (!s.missing.empty()) {
      std::cerr << "collect: " << s.missing.size()
                << " Slurm array tasks produced no database (not run yet, or failed before "
                   "training):\n";
      for (const MissingTask& t : s.missing) {
        std::cerr << "  task " << t.task << " of " << t.script << ": run " << t.run_id << "; see "
                  << t.slurm_output << " and " << t.log << "\n";
      }
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace moebench
