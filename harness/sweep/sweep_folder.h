// The folder of a sweep: what the runner and the Slurm tasks read and write besides the
// database. Layout (default <db folder>/sweeps/<sweep name>/):
//   manifest.toml        the manifest and its includes, as loaded
//   sweep.json           {"sweep": the sweeps row, "runs": [run ids]}: lets `collect` tag runs
//   <run id>/spec.json   the resolved run spec that `moebench train --run-spec` reads
//   <run id>/train.log   the run's output, every attempt appended
//   <run id>/run.db      the run's own database (--per-run-db and Slurm only)
#pragma once

#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/sweep/manifest.h"

namespace moebench {

std::string DefaultSweepDir(const std::string& db, const std::string& sweep_name);
std::string RunSpecPath(const std::string& sweep_dir, const std::string& run_id);
std::string RunLogPath(const std::string& sweep_dir, const std::string& run_id);
std::string RunDbPath(const std::string& sweep_dir, const std::string& run_id);

// The sweeps row for a manifest: id, name, text, hash, now, and the git commit (with a dirty
// flag) of the repository the manifest sits in, "" when there is none.
SweepRow MakeSweepRow(const Manifest& manifest, const std::string& manifest_path);

// Writes manifest.toml, sweep.json and every run's spec.json (each file atomically).
void WriteSweepFolder(const std::string& sweep_dir, const Manifest& manifest, const SweepRow& sweep,
                      const std::vector<PlannedRun>& runs);

// Reads sweep.json: the sweep row and its run ids. Throws naming the file when malformed.
SweepRow ReadSweepJson(const std::string& path, std::vector<std::string>* run_ids);

// The last `lines` lines of a text file ("" when it cannot be read).
std::string FileTail(const std::string& path, int lines);

}  // namespace moebench
