// Sweep manifests: a TOML file (plus the base files it includes) -> the list of fully resolved
// run specs it stands for. The manifest language is documented in README "Sweeps"; in short:
//
//   include = "base.toml"          # or a list; paths relative to this file; this file wins
//   [sweep]    name, description, claims (ids of reports/claims.py this sweep targets)
//   [data]     dataset, langs, data_dir, vocab_size
//   [model]    num_experts
//   [train]    max_steps, tokens_per_batch, lr, warmup, clip_norm, dropout, label_smoothing,
//              eval_every, log_every, checkpoint_every, valid_sentences
//   [topology] workers, workers_per_node, exchange, world_size, and the network model's
//              intra_node_gbps, inter_node_gbps, intra_node_latency_us, inter_node_latency_us,
//              node_nic_gbps
//   [methods.<method>]  fixed knobs of that method
//   [matrix]   lists that are crossed: method, size, seed, any run-spec field by name, and
//              method knobs as `<method>.<knob>` (crossed only into that method's runs)
//   [[runs]]   explicit runs: any run-spec field, plus `knobs = { ... }`
//
// Every problem found (unknown keys, wrong types, unknown methods, sizes or knobs, empty
// lists) is collected and thrown at once as one ManifestError, each naming file, line and key.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "harness/spec/run_spec.h"

namespace moebench {

struct ManifestIssue {
  std::string file;
  int line = 0;     // 0: no line (e.g. a file that cannot be read)
  std::string key;  // dotted path, e.g. "matrix.switch.capacity_factor"; may be empty
  std::string message;
  std::string ToString() const;  // "file:line: key: message"
};

class ManifestError : public std::runtime_error {
 public:
  explicit ManifestError(std::vector<ManifestIssue> issues);
  const std::vector<ManifestIssue>& issues() const { return issues_; }

 private:
  std::vector<ManifestIssue> issues_;
};

// One expanded run: its resolved spec (knob defaults filled in) and its id.
struct PlannedRun {
  RunSpec spec;
  std::string id;
  std::string origin;  // "matrix" or "runs[3]" (0-based), for messages
};

struct ManifestFile {
  std::string path;
  std::string text;
};

struct Manifest {
  std::string name;                 // [sweep] name; default: the file's stem
  std::string description;          // [sweep] description
  std::vector<std::string> claims;  // [sweep] claims: the claim ids it is built to answer
  std::vector<ManifestFile> files;  // the manifest first, then its includes, in load order
  std::vector<PlannedRun> runs;     // in expansion order, duplicates (same id) dropped
  std::vector<std::string> axes;    // the matrix keys, in the order they are crossed

  std::string Text() const;  // every file's text, each after a "# ==> path <==" line
  std::string Hash() const;  // SHA-256 of Text()
  // "<name>-<8 hex digits>": the hash of the name and the sorted run ids, so that editing a
  // comment keeps the sweep, and the same runs under the same name are the same sweep.
  std::string SweepId() const;
};

// Reads, validates and expands the manifest at `path`. Throws ManifestError listing every
// problem found.
Manifest LoadManifest(const std::string& path);

// The same from text (tests); `path` names it in messages and anchors relative includes.
Manifest ParseManifest(const std::string& text, const std::string& path);

}  // namespace moebench
