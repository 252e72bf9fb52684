#include "harness/comm/dist_env.h"

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace moebench {

namespace {

int ParseInt(const std::string& name, const std::string& value) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size()) {
    throw std::invalid_argument("environment variable " + name + "='" + value +
                                "' is not an integer");
  }
  return v;
}

int Required(const EnvGetter& env, const std::string& name) {
  auto v = env(name);
  if (!v) throw std::invalid_argument("environment variable " + name + " is not set");
  return ParseInt(name, *v);
}

int Optional(const EnvGetter& env, const std::string& name, int fallback) {
  auto v = env(name);
  return v ? ParseInt(name, *v) : fallback;
}

void Check(const DistEnv& d, const std::string& family) {
  auto bad = [&](const std::string& what) {
    throw std::invalid_argument(family + " environment: " + what);
  };
  if (d.world_size < 1) bad("world size " + std::to_string(d.world_size) + " < 1");
  if (d.rank < 0 || d.rank >= d.world_size) {
    bad("rank " + std::to_string(d.rank) + " outside [0, " + std::to_string(d.world_size) + ")");
  }
  if (d.local_world_size < 1 || d.local_world_size > d.world_size) {
    bad("local world size " + std::to_string(d.local_world_size) + " outside [1, " +
        std::to_string(d.world_size) + "]");
  }
  if (d.local_rank < 0 || d.local_rank >= d.local_world_size) {
    bad("local rank " + std::to_string(d.local_rank) + " outside [0, " +
        std::to_string(d.local_world_size) + ")");
  }
  if (d.port_file.empty() && (d.master_port <= 0 || d.master_port > 65535)) {
    bad("port " + std::to_string(d.master_port) + " outside [1, 65535]");
  }
  if (d.master_addr.empty()) bad("no rendezvous host (set MASTER_ADDR)");
}

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string FirstSlurmHost(const std::string& nodelist) {
  // Hosts are separated by commas outside brackets; a bracket holds ranges of suffixes.
  std::string first;
  int depth = 0;
  for (char c : nodelist) {
    if (c == ',' && depth == 0) break;
    if (c == '[') ++depth;
    if (c == ']') --depth;
    first += c;
  }
  const size_t open = first.find('[');
  if (open == std::string::npos) return first;
  const size_t close = first.find(']', open);
  if (close == std::string::npos) {
    throw std::invalid_argument("Slurm node list '" + nodelist + "' has an unclosed bracket");
  }
  std::string inner = first.substr(open + 1, close - open - 1);
  std::string suffix = inner.substr(0, inner.find_first_of(",-"));
  return first.substr(0, open) + suffix + first.substr(close + 1);
}

int FirstSlurmTaskCount(const std::string& tasks_per_node) {
  size_t i = 0;
  while (i < tasks_per_node.size() && std::isdigit(static_cast<unsigned char>(tasks_per_node[i]))) {
    ++i;
  }
  if (i == 0) {
    throw std::invalid_argument("SLURM_TASKS_PER_NODE='" + tasks_per_node +
                                "' does not start with a count");
  }
  return std::stoi(tasks_per_node.substr(0, i));
}

std::optional<DistEnv> DetectDistEnv(const EnvGetter& env) {
  DistEnv d;
  const auto addr = env("MASTER_ADDR");
  const auto port = env("MASTER_PORT");
  if (env("RANK") && env("WORLD_SIZE")) {
    d.source = "torchrun";
    d.rank = Required(env, "RANK");
    d.world_size = Required(env, "WORLD_SIZE");
    d.local_rank = Optional(env, "LOCAL_RANK", d.rank);
    d.local_world_size = Optional(env, "LOCAL_WORLD_SIZE", d.world_size);
    d.master_addr = addr.value_or("127.0.0.1");
    if (env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True") {
      d.agent_store = true;
      d.store_prefix =
          "/worker/attempt_" + std::to_string(Optional(env, "TORCHELASTIC_RESTART_COUNT", 0));
    }
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS") && env("SLURM_STEP_ID")) {
    d.source = "slurm";
    d.rank = Required(env, "SLURM_PROCID");
    d.world_size = Required(env, "SLURM_NTASKS");
    d.local_rank = Optional(env, "SLURM_LOCALID", 0);
    if (auto n = env("SLURM_NTASKS_PER_NODE")) {
      d.local_world_size = ParseInt("SLURM_NTASKS_PER_NODE", *n);
    } else if (auto t = env("SLURM_TASKS_PER_NODE")) {
      d.local_world_size = FirstSlurmTaskCount(*t);
    } else {
      d.local_world_size = d.world_size;
    }
    if (addr) {
      d.master_addr = *addr;
    } else if (auto list = env("SLURM_JOB_NODELIST")) {
      d.master_addr = FirstSlurmHost(*list);
    } else if (auto list2 = env("SLURM_NODELIST")) {
      d.master_addr = FirstSlurmHost(*list2);
    }
    if (!port) {
      if (auto job = env("SLURM_JOB_ID"))
        d.master_port = 29500 + ParseInt("SLURM_JOB_ID", *job) % 10000;
    }
  } else if (env("OMPI_COMM_WORLD_RANK") && env("OMPI_COMM_WORLD_SIZE")) {
    d.source = "mpi";
    d.rank = Required(env, "OMPI_COMM_WORLD_RANK");
    d.world_size = Required(env, "OMPI_COMM_WORLD_SIZE");
    d.local_rank = Optional(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    d.local_world_size = Optional(env, "OMPI_COMM_WORLD_LOCAL_SIZE", d.world_size);
    const bool one_host = d.local_world_size == d.world_size;
    if (addr) {
      d.master_addr = *addr;
    } else if (one_host) {
      d.master_addr = "127.0.0.1";
    }
    if (!port) {
      const auto session = env("OMPI_MCA_orte_jobfam_session_dir");
      if (one_host && session && !session->empty()) {
        d.master_port = 0;
        d.port_file = *session + "/moebench-rendezvous.port";
      } else if (auto job = env("OMPI_MCA_ess_base_jobid")) {
        long long id = 0;
        try {
          size_t used = 0;
          id = std::stoll(*job, &used);
          if (used != job->size()) id = -1;
        } catch (const std::exception&) {
          id = -1;
        }
        if (id < 0) {
          throw std::invalid_argument("environment variable OMPI_MCA_ess_base_jobid='" + *job +
                                      "' is not an integer");
        }
        d.master_port = 29500 + static_cast<int>((id >> 16) % 10000);
      }
    }
  } else {
    return std::nullopt;
  }
  if (port) d.master_port = ParseInt("MASTER_PORT", *port);
  Check(d, d.source);
  return d;
}

}  // namespace moebench
