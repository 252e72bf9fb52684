// Where this process sits in a multi-process job, read from the variables the common launchers
// set. See Note [Rank environment].
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace moebench {

// Note [Rank environment]: the same binary runs under
//   - torchrun (and `moebench launch`): RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
//     MASTER_ADDR, MASTER_PORT. Under torchrun's elastic agent with its default (static)
//     rendezvous, TORCHELASTIC_USE_AGENT_STORE=True: the agent already serves the TCPStore at
//     MASTER_ADDR:MASTER_PORT, so every rank, rank 0 included, connects to it as a client, under
//     the prefix "/worker/attempt_<TORCHELASTIC_RESTART_COUNT>" (what torch's own workers use);
//     with --standalone (c10d rendezvous) the variable is False and rank 0 serves the store;
//   - Slurm's srun: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE (or
//     SLURM_TASKS_PER_NODE), the rendezvous host is the first host of SLURM_JOB_NODELIST (or
//     SLURM_NODELIST) and the port MASTER_PORT or 29500 + SLURM_JOB_ID % 10000. Only inside a job
//     step (SLURM_STEP_ID set): a batch script's own shell is not a rank;
//   - Open MPI's mpirun: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK,
//     OMPI_COMM_WORLD_LOCAL_SIZE. When every rank is on this host (local size = world size) the
//     rendezvous host is the loopback and, without MASTER_PORT, the port is a free one: rank 0
//     binds port 0 and writes the port it got to `port_file` in mpirun's own session folder for
//     this job (OMPI_MCA_orte_jobfam_session_dir, made and removed by mpirun, so two jobs never
//     share it), where the other ranks read it. Across hosts MASTER_ADDR must be exported
//     (mpirun -x MASTER_ADDR) and the port is MASTER_PORT or 29500 + the job family
//     (OMPI_MCA_ess_base_jobid >> 16) % 10000, which differs between concurrent mpiruns.
// The first family whose rank and size variables are both set wins, in the order above.
// MASTER_ADDR and MASTER_PORT, when set, override what a family would derive.
struct DistEnv {
  std::string source;  // "torchrun", "slurm", "mpi"
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 29500;  // 0 with a port_file: rank 0 binds a free port
  // torchrun's agent serves the store: every rank is a client, keys under store_prefix.
  bool agent_store = false;
  std::string store_prefix;
  // Open MPI, all ranks on this host, no MASTER_PORT: where rank 0 writes its store's port.
  std::string port_file;
};

using EnvGetter = std::function<std::optional<std::string>(const std::string&)>;

// std::getenv as an EnvGetter.
std::optional<std::string> ProcessEnv(const std::string& name);

// nullopt when no launcher variables are present (a plain single-process run). Inconsistent or
// malformed values are std::invalid_argument errors that name the variable.
std::optional<DistEnv> DetectDistEnv(const EnvGetter& env = ProcessEnv);

// The first host of a Slurm node list: "gpu[03-05,07],cpu1" -> "gpu03".
std::string FirstSlurmHost(const std::string& nodelist);

// The first count of SLURM_TASKS_PER_NODE ("4(x2),3" -> 4).
int FirstSlurmTaskCount(const std::string& tasks_per_node);

}  // namespace moebench
