// The rank environment of torchrun, Slurm and Open MPI (Note [Rank environment]).
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

#include "harness/comm/dist_env.h"

namespace moebench {
namespace {

EnvGetter Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(DistEnv, NoLauncherVariablesMeansOneProcess) {
  EXPECT_FALSE(DetectDistEnv(Env({})).has_value());
  // A Slurm batch script's own shell is not a rank (no SLURM_STEP_ID).
  EXPECT_FALSE(DetectDistEnv(Env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}})).has_value());
}

TEST(DistEnv, Torchrun) {
  auto d = DetectDistEnv(Env({{"RANK", "3"},
                              {"WORLD_SIZE", "8"},
                              {"LOCAL_RANK", "1"},
                              {"LOCAL_WORLD_SIZE", "2"},
                              {"MASTER_ADDR", "10.0.0.1"},
                              {"MASTER_PORT", "1234"}}));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->source, "torchrun");
  EXPECT_EQ(d->rank, 3);
  EXPECT_EQ(d->world_size, 8);
  EXPECT_EQ(d->local_rank, 1);
  EXPECT_EQ(d->local_world_size, 2);
  EXPECT_EQ(d->master_addr, "10.0.0.1");
  EXPECT_EQ(d->master_port, 1234);
}

TEST(DistEnv, SlurmStepDerivesHostAndPort) {
  auto d = DetectDistEnv(Env({{"SLURM_PROCID", "5"},
                              {"SLURM_NTASKS", "8"},
                              {"SLURM_LOCALID", "1"},
                              {"SLURM_STEP_ID", "0"},
                              {"SLURM_TASKS_PER_NODE", "4(x2)"},
                              {"SLURM_JOB_NODELIST", "gpu[07-08],cpu1"},
                              {"SLURM_JOB_ID", "123456"}}));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->source, "slurm");
  EXPECT_EQ(d->rank, 5);
  EXPECT_EQ(d->world_size, 8);
  EXPECT_EQ(d->local_rank, 1);
  EXPECT_EQ(d->local_world_size, 4);
  EXPECT_EQ(d->master_addr, "gpu07");
  EXPECT_EQ(d->master_port, 29500 + 123456 % 10000);  // 32956
}

// Across hosts (local size < world size) the rendezvous host must be given; the port is
// MASTER_PORT, or 29500 + the Open MPI job family (the jobid's upper 16 bits) mod 10000.
TEST(DistEnv, OpenMpiAcrossHostsNeedsMasterAddr) {
  std::map<std::string, std::string> v = {
      {"OMPI_COMM_WORLD_RANK", "1"},
      {"OMPI_COMM_WORLD_SIZE", "4"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
      {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
      {"OMPI_MCA_ess_base_jobid", "1115750401"},
      {"OMPI_MCA_orte_jobfam_session_dir", "/tmp/ompi.x/pid.1"}};
  try {
    DetectDistEnv(Env(v));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_ADDR"), std::string::npos) << e.what();
  }
  v["MASTER_ADDR"] = "node1";
  auto d = DetectDistEnv(Env(v));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->source, "mpi");
  EXPECT_EQ(d->rank, 1);
  EXPECT_EQ(d->master_addr, "node1");
  // 1115750401 >> 16 = 17025 (1115750401 = 17025 * 65536 + 1); 29500 + 7025.
  EXPECT_EQ(d->master_port, 36525);
  EXPECT_TRUE(d->port_file.empty());
  v["MASTER_PORT"] = "4242";
  EXPECT_EQ(DetectDistEnv(Env(v))->master_port, 4242);
  v.erase("MASTER_PORT");
  v["OMPI_MCA_ess_base_jobid"] = "12x";
  EXPECT_THROW(DetectDistEnv(Env(v)), std::invalid_argument);
}

// All ranks on this host: the loopback, and a free port that rank 0 publishes in mpirun's
// session folder for the job (two mpiruns on one host never collide on 29500).
TEST(DistEnv, OpenMpiOnOneHostUsesLoopbackAndAFreePort) {
  std::map<std::string, std::string> v = {
      {"OMPI_COMM_WORLD_RANK", "1"},
      {"OMPI_COMM_WORLD_SIZE", "2"},
      {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
      {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
      {"OMPI_MCA_ess_base_jobid", "1115750401"},
      {"OMPI_MCA_orte_jobfam_session_dir", "/tmp/ompi.x/pid.7"}};
  auto d = DetectDistEnv(Env(v));
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->master_addr, "127.0.0.1");
  EXPECT_EQ(d->master_port, 0);
  EXPECT_EQ(d->port_file, "/tmp/ompi.x/pid.7/moebench-rendezvous.port");
  // MASTER_ADDR and MASTER_PORT still win.
  v["MASTER_ADDR"] = "10.1.1.1";
  v["MASTER_PORT"] = "4242";
  d = DetectDistEnv(Env(v));
  EXPECT_EQ(d->master_addr, "10.1.1.1");
  EXPECT_EQ(d->master_port, 4242);
  EXPECT_TRUE(d->port_file.empty());
  // Without a session folder (an old Open MPI), a port derived from the job family.
  v.erase("MASTER_PORT");
  v.erase("OMPI_MCA_orte_jobfam_session_dir");
  EXPECT_EQ(DetectDistEnv(Env(v))->master_port, 36525);
}

// torchrun's elastic agent with the default (static) rendezvous serves the store itself
// (torch/distributed/elastic/agent/server/local_elastic_agent.py sets
// TORCHELASTIC_USE_AGENT_STORE=str(True)); torch's workers then connect as clients under
// "/worker/attempt_<restart count>" (torch/distributed/rendezvous.py, _create_c10d_store).
TEST(DistEnv, TorchrunAgentStore) {
  std::map<std::string, std::string> v = {{"RANK", "0"},
                                          {"WORLD_SIZE", "2"},
                                          {"MASTER_ADDR", "127.0.0.1"},
                                          {"MASTER_PORT", "29511"},
                                          {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                          {"TORCHELASTIC_RESTART_COUNT", "3"}};
  auto d = DetectDistEnv(Env(v));
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->agent_store);
  EXPECT_EQ(d->store_prefix, "/worker/attempt_3");
  EXPECT_EQ(d->master_port, 29511);
  v["TORCHELASTIC_USE_AGENT_STORE"] = "False";  // --standalone: rank 0 serves the store
  d = DetectDistEnv(Env(v));
  EXPECT_FALSE(d->agent_store);
  EXPECT_TRUE(d->store_prefix.empty());
  v.erase("TORCHELASTIC_USE_AGENT_STORE");  // moebench launch
  EXPECT_FALSE(DetectDistEnv(Env(v))->agent_store);
}

TEST(DistEnv, BadValuesNameTheVariable) {
  try {
    DetectDistEnv(Env({{"RANK", "x1"}, {"WORLD_SIZE", "2"}}));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("RANK"), std::string::npos) << e.what();
  }
  EXPECT_THROW(DetectDistEnv(Env({{"RANK", "2"}, {"WORLD_SIZE", "2"}})), std::invalid_argument);
  EXPECT_THROW(DetectDistEnv(Env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_WORLD_SIZE", "3"}})),
               std::invalid_argument);
}

TEST(DistEnv, SlurmNodeLists) {
  EXPECT_EQ(FirstSlurmHost("node1"), "node1");
  EXPECT_EQ(FirstSlurmHost("node1,node2"), "node1");
  EXPECT_EQ(FirstSlurmHost("gpu[003-005,009]"), "gpu003");
  EXPECT_EQ(FirstSlurmHost("a[1,3]-ib,b2"), "a1-ib");
  EXPECT_EQ(FirstSlurmTaskCount("4(x2),3"), 4);
  EXPECT_EQ(FirstSlurmTaskCount("16"), 16);
  EXPECT_THROW(FirstSlurmTaskCount("(x2)"), std::invalid_argument);
}

}  // namespace
}  // namespace moebench
