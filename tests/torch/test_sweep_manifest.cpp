// Sweep manifests: expansion, run ids, includes, and every class of manifest error.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "harness/spec/resolve.h"
#include "harness/sweep/manifest.h"
#include "harness/sweep/manifest_values.h"
#include "harness/util/fs.h"

namespace moebench {
namespace {

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("moebench_manifest_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { RemoveTree(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p) << text;
    return p;
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// The error's issues, one per line, for EXPECT_THAT-free substring checks.
std::string IssuesOf(const std::string& text, const std::string& path = "m.toml") {
  try {
    ParseManifest(text, path);
  } catch (const ManifestError& e) {
    return e.what();
  }
  return "(no error)";
}

size_t CountIssues(const std::string& text) {
  try {
    ParseManifest(text, "m.toml");
  } catch (const ManifestError& e) {
    return e.issues().size();
  }
  return 0;
}

const char* const kBasic = R"(
[sweep]
name = "t"
[matrix]
method = ["switch"]
size = ["tiny"]
seed = [1, 2]
lr = [0.001, 0.002]
[train]
max_steps = 30
)";

TEST(SweepManifest, CrossesEveryMatrixListInOrder) {
  const Manifest m = ParseManifest(kBasic, "m.toml");
  ASSERT_EQ(m.runs.size(), 4u);  // 1 method x 1 size x 2 seeds x 2 lr
  // size, seed, then the other fields alphabetically; the last list varies fastest.
  EXPECT_EQ(m.runs[0].spec.seed, 1);
  EXPECT_DOUBLE_EQ(m.runs[0].spec.lr, 0.001);
  EXPECT_EQ(m.runs[1].spec.seed, 1);
  EXPECT_DOUBLE_EQ(m.runs[1].spec.lr, 0.002);
  EXPECT_EQ(m.runs[2].spec.seed, 2);
  EXPECT_DOUBLE_EQ(m.runs[2].spec.lr, 0.001);
  for (const PlannedRun& r : m.runs) {
    EXPECT_EQ(r.spec.method, "switch");
    EXPECT_EQ(r.spec.max_steps, 30);
    EXPECT_EQ(r.spec.sweep, "");  // the id must not depend on the manifest
  }
  EXPECT_EQ(m.name, "t");
  EXPECT_EQ(m.axes, (std::vector<std::string>{"method", "size", "seed", "lr"}));
}

TEST(SweepManifest, RunIdIsTheIdOfTheSameSpecBuiltByHand) {
  const Manifest m = ParseManifest(kBasic, "m.toml");
  RunSpec spec;
  spec.method = "switch";
  spec.size = "tiny";
  spec.seed = 2;
  spec.lr = 0.002;
  spec.max_steps = 30;
  ResolveKnobs(spec);
  EXPECT_EQ(m.runs[3].id, spec.RunId());
  EXPECT_EQ(m.runs[3].id, m.runs[3].spec.RunId());
}

TEST(SweepManifest, KeyAndSectionOrderDoNotChangeIds) {
  const char* const reordered = R"(
[train]
max_steps = 30
[matrix]
lr = [0.001, 0.002]
seed = [1, 2]
size = ["tiny"]
method = ["switch"]
[sweep]
name = "t"
)";
  const Manifest a = ParseManifest(kBasic, "a.toml");
  const Manifest b = ParseManifest(reordered, "b.toml");
  std::vector<std::string> ia, ib;
  for (const auto& r : a.runs) ia.push_back(r.id);
  for (const auto& r : b.runs) ib.push_back(r.id);
  EXPECT_EQ(ia, ib);
  EXPECT_EQ(a.SweepId(), b.SweepId());
  EXPECT_NE(a.Hash(), b.Hash());  // the text differs, the runs do not
}

TEST(SweepManifest, WritingADefaultKnobExplicitlyKeepsTheId) {
  const Manifest plain = ParseManifest("[matrix]\nmethod = [\"switch\"]\n", "m.toml");
  // Defaults: capacity_factor "1.25", eval_capacity_factor "2.0", min_capacity "4".
  const Manifest explicit_defaults = ParseManifest(
      "[matrix]\nmethod = [\"switch\"]\n[methods.switch]\ncapacity_factor = 1.25\n"
      "eval_capacity_factor = 2\nmin_capacity = 4.0\n",
      "m.toml");
  ASSERT_EQ(plain.runs.size(), 1u);
  ASSERT_EQ(explicit_defaults.runs.size(), 1u);
  EXPECT_EQ(plain.runs[0].id, explicit_defaults.runs[0].id);
}

TEST(SweepManifest, KnobListsAreCrossedIntoTheirMethodOnly) {
  const Manifest m = ParseManifest(R"(
[matrix]
method = ["switch"]
seed = [1, 2]
switch.capacity_factor = [1.0, 2]
[methods.switch]
aux_coef = 0.1
)",
                                   "m.toml");
  ASSERT_EQ(m.runs.size(), 4u);
  EXPECT_EQ(m.runs[0].spec.knobs.at("capacity_factor"), "1.0");
  EXPECT_EQ(m.runs[1].spec.knobs.at("capacity_factor"), "2.0");
  EXPECT_EQ(m.runs[0].spec.knobs.at("aux_coef"), "0.1");
  EXPECT_EQ(m.runs[0].spec.knobs.at("jitter"), "0.01");  // defaults resolved into the spec
  // A quoted dotted key means the same.
  const Manifest q = ParseManifest(
      "[matrix]\nmethod = [\"switch\"]\nseed = [1, 2]\n\"switch.capacity_factor\" = [1.0, 2.0]\n"
      "[methods.switch]\naux_coef = 0.1\n",
      "m.toml");
  ASSERT_EQ(q.runs.size(), 4u);
  for (size_t i = 0; i < 4; i++) EXPECT_EQ(q.runs[i].id, m.runs[i].id);
}

TEST(SweepManifest, ExplicitRunsAddToTheMatrixAndDuplicatesCollapse) {
  const Manifest m = ParseManifest(R"(
[matrix]
method = ["switch"]
seed = [1]
[[runs]]
method = "switch"
seed = 1          # the same run as the matrix's: one run
[[runs]]
method = "switch"
seed = 5
max_steps = 7
knobs = { capacity_factor = 3.0 }
)",
                                   "m.toml");
  ASSERT_EQ(m.runs.size(), 2u);
  EXPECT_EQ(m.runs[0].origin, "matrix");
  EXPECT_EQ(m.runs[1].origin, "runs[1]");
  EXPECT_EQ(m.runs[1].spec.seed, 5);
  EXPECT_EQ(m.runs[1].spec.max_steps, 7);
  EXPECT_EQ(m.runs[1].spec.knobs.at("capacity_factor"), "3.0");
}

TEST(SweepManifest, IncludeIsABaseThatTheIncludingFileOverrides) {
  TempDir dir;
  dir.Write("base.toml",
            "[train]\nmax_steps = 7\nlr = 0.005\n[data]\ndataset = \"synthetic\"\n"
            "langs = [\"xa\"]\n");
  const std::string main =
      dir.Write("main.toml",
                "include = \"base.toml\"\n[train]\nmax_steps = 9\n[matrix]\nmethod = "
                "[\"switch\"]\n");
  const Manifest m = LoadManifest(main);
  ASSERT_EQ(m.runs.size(), 1u);
  EXPECT_EQ(m.runs[0].spec.max_steps, 9);      // the including file wins
  EXPECT_DOUBLE_EQ(m.runs[0].spec.lr, 0.005);  // the base fills the rest
  EXPECT_EQ(m.runs[0].spec.langs, std::vector<std::string>{"xa"});
  ASSERT_EQ(m.files.size(), 2u);
  EXPECT_EQ(m.name, "main");  // no [sweep] name: the file's stem
  EXPECT_NE(m.Text().find("max_steps = 7"), std::string::npos);
}

TEST(SweepManifest, IncludeErrorsNameTheFile) {
  TempDir dir;
  const std::string a =
      dir.Write("a.toml", "include = \"b.toml\"\n[matrix]\nmethod=[\"switch\"]\n");
  dir.Write("b.toml", "include = \"a.toml\"\n");
  try {
    LoadManifest(a);
    FAIL() << "expected an include cycle error";
  } catch (const ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("include cycle"), std::string::npos) << e.what();
  }
  const std::string c = dir.Write("c.toml", "include = \"missing.toml\"\n");
  try {
    LoadManifest(c);
    FAIL() << "expected a missing include error";
  } catch (const ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:1: include: no such file"), std::string::npos)
        << e.what();
  }
  // An error inside an included file names that file and line.
  dir.Write("bad_base.toml", "[train]\nmax_step = 3\n");
  const std::string d =
      dir.Write("d.toml", "include = \"bad_base.toml\"\n[matrix]\nmethod = [\"switch\"]\n");
  try {
    LoadManifest(d);
    FAIL() << "expected an unknown key error";
  } catch (const ManifestError& e) {
    EXPECT_NE(std::string(e.what()).find("bad_base.toml:2: train.max_step: unknown key (did you "
                                         "mean 'max_steps'?)"),
              std::string::npos)
        << e.what();
  }
}

TEST(SweepManifest, EveryErrorClassIsReportedAtOnceWithFileLineAndKey) {
  const std::string text = R"([sweep]
name = "x"
colour = "red"
[matrix]
method = ["switch", "nosuch"]
size = ["tiny", "huge"]
seed = []
switch.capacity_factor = ["big"]
switch.warp = [1]
[train]
max_steps = "ten"
lr = 0.001
eval_every = 0
[data]
dataset = "wmt"
[methods.switch]
aux_coef = true
[topology]
max_steps = 3
[bogus]
)";
  const std::string msg = IssuesOf(text);
  EXPECT_NE(msg.find("m.toml:3: sweep.colour: unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.toml:5: matrix.method: unknown method 'nosuch'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.toml:6: matrix.size: unknown size 'huge'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.toml:7: matrix.seed: empty list"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.toml:8: matrix.switch.capacity_factor: expected a number, got a string"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:9: matrix.switch.warp: unknown knob 'warp' for method switch"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:11: train.max_steps: expected an integer, got a string"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:13: train.eval_every: must be at least 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.toml:15: data.dataset: unknown dataset 'wmt'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("m.toml:17: methods.switch.aux_coef: expected a number, got a boolean"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:19: topology.max_steps: unknown key (it belongs in [train])"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:20: bogus: unknown top-level key"), std::string::npos) << msg;
  EXPECT_EQ(CountIssues(text), 12u) << msg;
  // In file order.
  EXPECT_LT(msg.find("m.toml:3:"), msg.find("m.toml:20:"));
}

TEST(SweepManifest, StructuralErrors) {
  EXPECT_NE(IssuesOf("[sweep]\nname = \"x\"\n").find("nothing to run"), std::string::npos);
  EXPECT_NE(IssuesOf("[matrix]\nseed = [1]\n").find("m.toml:1: matrix: no 'method' list"),
            std::string::npos);
  EXPECT_NE(IssuesOf("[matrix]\nmethod = \"switch\"\n")
                .find("matrix.method: expected a list of values to cross, got a string"),
            std::string::npos);
  EXPECT_NE(IssuesOf("[matrix]\nmethod = [\"switch\"]\n[[runs]]\nseed = 2\n")
                .find("m.toml:3: runs[0]: no method"),
            std::string::npos);
  EXPECT_NE(IssuesOf("[matrix]\nmethod = [\"switch\"]\nmax_step = [1]\n")
                .find("matrix.max_step: unknown key (did you mean 'max_steps'?)"),
            std::string::npos);
  EXPECT_NE(
      IssuesOf("[matrix]\nmethod = [\"switch\"]\nknobs = [1]\n").find("matrix.knobs: unknown key"),
      std::string::npos);
  EXPECT_NE(IssuesOf("[sweep]\nname = \"a b\"\n[matrix]\nmethod = [\"switch\"]\n")
                .find("not a valid sweep name"),
            std::string::npos);
  EXPECT_NE(IssuesOf("[matrix\nmethod = 1\n").find("m.toml:1: TOML syntax error"),
            std::string::npos);
  EXPECT_NE(IssuesOf("[train]\nmethod = \"switch\"\n[matrix]\nmethod = [\"switch\"]\n")
                .find("train.method: unknown key (method varies per run"),
            std::string::npos);
  // A knob list for a method the matrix does not run would silently do nothing.
  EXPECT_NE(IssuesOf("[matrix]\nmethod = [\"switch\"]\n[matrix.nosuch]\nk = [1]\n")
                .find("unknown method 'nosuch'"),
            std::string::npos);
}

TEST(SweepManifest, TopologyTakesWorldSizeAndTheNetworkModel) {
  const Manifest m = ParseManifest(R"([matrix]
method = ["switch"]
inter_node_gbps = [100, 400.5]
[topology]
workers = 4
workers_per_node = 2
world_size = 4
intra_node_gbps = 2400
intra_node_latency_us = 1.5
inter_node_latency_us = 0
)",
                                   "m.toml");
  ASSERT_EQ(m.runs.size(), 2u);
  EXPECT_EQ(m.axes, (std::vector<std::string>{"method", "inter_node_gbps"}));
  for (const PlannedRun& r : m.runs) {
    EXPECT_EQ(r.spec.workers, 4);
    EXPECT_EQ(r.spec.workers_per_node, 2);
    EXPECT_EQ(r.spec.world_size, 4);
    EXPECT_DOUBLE_EQ(r.spec.intra_node_gbps, 2400);  // an integer is taken as a number
    EXPECT_DOUBLE_EQ(r.spec.intra_node_latency_us, 1.5);
    EXPECT_DOUBLE_EQ(r.spec.inter_node_latency_us, 0);
  }
  EXPECT_DOUBLE_EQ(m.runs[0].spec.inter_node_gbps, 100);
  EXPECT_DOUBLE_EQ(m.runs[1].spec.inter_node_gbps, 400.5);
  EXPECT_NE(m.runs[0].id, m.runs[1].id);

  // Writing the defaults explicitly keeps the id of a run that does not mention them.
  const Manifest plain = ParseManifest("[matrix]\nmethod = [\"switch\"]\n", "m.toml");
  const Manifest defaults = ParseManifest(
      "[matrix]\nmethod = [\"switch\"]\n[topology]\nworld_size = 1\nintra_node_gbps = 1200\n"
      "inter_node_gbps = 100.0\nintra_node_latency_us = 2\ninter_node_latency_us = 5\n"
      "node_nic_gbps = 0\n",
      "m.toml");
  ASSERT_EQ(plain.runs.size(), 1u);
  ASSERT_EQ(defaults.runs.size(), 1u);
  EXPECT_EQ(plain.runs[0].id, defaults.runs[0].id);

  const std::string text = R"([matrix]
method = ["switch"]
intra_node_gbps = [0]
[topology]
inter_node_gbps = "fast"
intra_node_latency_us = -1
world_size = 1.5
inter_node_latency_us = true
node_nic_gbps = -100
[train]
world_size = 2
)";
  const std::string msg = IssuesOf(text);
  EXPECT_NE(msg.find("m.toml:3: matrix.intra_node_gbps: must be a positive number of gigabits per "
                     "second, got 0.0"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:9: topology.node_nic_gbps: must be a number of gigabits per second "
                     ">= 0 (0: no shared node NIC), got -100"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:5: topology.inter_node_gbps: expected a number, got a string"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:6: topology.intra_node_latency_us: must be a number of microseconds "
                     ">= 0, got -1.0"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:7: topology.world_size: expected an integer, got a float"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:8: topology.inter_node_latency_us: expected a number, got a boolean"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("m.toml:11: train.world_size: unknown key (it belongs in [topology])"),
            std::string::npos)
      << msg;
  EXPECT_EQ(CountIssues(text), 7u) << msg;
  EXPECT_NE(IssuesOf("[matrix]\nmethod = [\"switch\"]\n[topology]\nworld_size = 0\n")
                .find("m.toml:4: topology.world_size: must be at least 1, got 0"),
            std::string::npos);
}

// `world_size = N` with no workers_per_node puts the N ranks on one node, as
// `train --world-size N` does (harness/cli/cmd_train.cpp): the same run, the same id. Before,
// the manifest left workers_per_node at 1 and counted all traffic of two ranks on one machine
// as other-node, under another id.
TEST(SweepManifest, WorldSizeWithoutALayoutIsOneNodeLikeTheFlag) {
  const Manifest m =
      ParseManifest("[matrix]\nmethod = [\"switch\"]\n[topology]\nworld_size = 2\n", "m.toml");
  ASSERT_EQ(m.runs.size(), 1u);
  EXPECT_EQ(m.runs[0].spec.workers, 2);
  EXPECT_EQ(m.runs[0].spec.workers_per_node, 2);
  RunSpec flags;  // what `train --method switch --world-size 2` resolves to
  flags.world_size = 2;
  flags.workers = 2;
  flags.workers_per_node = 2;
  ResolveKnobs(flags);
  EXPECT_EQ(m.runs[0].id, flags.RunId());
  // A stated layout is kept.
  const Manifest two_nodes = ParseManifest(
      "[matrix]\nmethod = [\"switch\"]\n[topology]\nworld_size = 2\nworkers_per_node = 1\n",
      "m.toml");
  EXPECT_EQ(two_nodes.runs[0].spec.workers_per_node, 1);
}

TEST(SweepManifest, SweepListsTheClaimsItTargetsAndTheComputeModel) {
  const Manifest m = ParseManifest(R"([sweep]
claims = ["gd.bytes", "thor.dense"]
[matrix]
method = ["dense"]
dense.sizing = ["active", "total"]
[topology]
device_profile = "h100"
device_efficiency = 0.3
comm_overlap = 0.5
)",
                                   "m.toml");
  EXPECT_EQ(m.claims, (std::vector<std::string>{"gd.bytes", "thor.dense"}));
  ASSERT_EQ(m.runs.size(), 2u);
  EXPECT_EQ(m.runs[0].spec.device_profile, "h100");
  EXPECT_DOUBLE_EQ(m.runs[0].spec.device_efficiency, 0.3);
  EXPECT_DOUBLE_EQ(m.runs[0].spec.comm_overlap, 0.5);
  EXPECT_EQ(m.runs[1].spec.knobs.at("sizing"), "total");
  const std::string bad = IssuesOf(R"([sweep]
claims = "gd.bytes"
[matrix]
method = ["switch"]
[topology]
device_profile = "tpu"
device_efficiency = 1.5
comm_overlap = -1
)");
  EXPECT_NE(bad.find("m.toml:2: sweep.claims: expected a list of claim ids"), std::string::npos)
      << bad;
  EXPECT_NE(bad.find("m.toml:6: topology.device_profile: unknown device_profile 'tpu'"),
            std::string::npos)
      << bad;
  EXPECT_NE(bad.find("m.toml:7: topology.device_efficiency: must be a fraction of the peak"),
            std::string::npos)
      << bad;
  EXPECT_NE(bad.find("m.toml:8: topology.comm_overlap: must be a fraction in [0, 1]"),
            std::string::npos)
      << bad;
}

TEST(SweepManifest, KnobValuesAreSpelledLikeTheDefaults) {
  EXPECT_EQ(FormatKnobNumber(2), "2.0");
  EXPECT_EQ(FormatKnobNumber(0.01), "0.01");
  EXPECT_EQ(FormatKnobNumber(1.25), "1.25");
  EXPECT_EQ(FormatKnobNumber(1e-5), "1e-05");
  EXPECT_EQ(FormatKnobNumber(0.1 + 0.2), "0.30000000000000004");  // round-trips exactly
}

TEST(SweepManifest, ShippedManifestsValidate) {
  const char* source = std::getenv("MOEBENCH_SOURCE_DIR");
  if (source == nullptr) GTEST_SKIP() << "MOEBENCH_SOURCE_DIR not set";
  const std::filesystem::path dir = std::filesystem::path(source) / "experiments";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".toml" || name == "paper_base.toml") continue;
    try {
      const Manifest m = LoadManifest(entry.path().string());
      EXPECT_FALSE(m.runs.empty()) << name;
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": " << e.what();
    }
    checked++;
  }
  EXPECT_GE(checked, 3);
}

}  // namespace
}  // namespace moebench
