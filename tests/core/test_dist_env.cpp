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

TEST(DistEnv, OpenMpiNeedsMasterAddr) {
  std::map<std::string, std::string> v = {{"OMPI_COMM_WORLD_RANK", "1"},
                                          {"OMPI_COMM_WORLD_SIZE", "2"},
                                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}};
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
  EXPECT_EQ(d->master_port, 29500);
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
