// `moebench launch`: starts N local ranks the way torchrun does. See Note [Launcher].
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace moebench {

// Note [Launcher]: every rank is a child process with RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (a free port unless one is given), its
// stdout and stderr passed on line by line with a "[rank r] " prefix. The first rank that exits
// non-zero (or is killed by a signal) makes the launcher send SIGTERM to the others and, after a
// grace period, SIGKILL; the launcher then exits with that first failure's status. Children get
// PR_SET_PDEATHSIG, so killing the launcher does not leave ranks behind. `ranks_per_node` < nproc
// emulates several nodes on one machine (LOCAL_WORLD_SIZE = ranks_per_node,
// LOCAL_RANK = rank % ranks_per_node): the byte meter then classifies traffic between the
// emulated nodes as other-node.
struct LaunchOptions {
  int nproc = 1;
  int ranks_per_node = 0;         // 0: all ranks on one node
  std::vector<std::string> argv;  // the program and its arguments, run once per rank
  std::string master_addr = "127.0.0.1";
  int master_port = 0;        // 0: a free port
  double grace_seconds = 10;  // between SIGTERM and SIGKILL after the first failure
  bool prefix_output = true;
};

struct RankExit {
  int rank = 0;
  int exit_code = 0;  // 128 + signal when killed by a signal
  int signal = 0;     // 0 unless killed by a signal
};

// Note [Which rank failed]: when one rank fails, the others' next collective fails too (the
// peer closed its connection, or the collective timed out), and the ranks exit close together.
// A rank whose collective failed throws CollectiveError and exits with kExitCollectiveFailed;
// the launcher, seeing such an exit first, waits up to kCollectiveGraceSeconds for another rank
// to fail otherwise and names that one (else the collective's rank: a hung peer never exits).
class CollectiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
constexpr int kExitCollectiveFailed = 3;
constexpr double kCollectiveGraceSeconds = 2.0;

struct LaunchResult {
  int exit_code = 0;  // 0 when every rank succeeded; else the first failure's
  int first_failed_rank = -1;
  std::string first_failure;    // e.g. "rank 1 was killed by signal 9 (Killed)"
  std::vector<RankExit> exits;  // in the order the ranks ended
};

// Runs the ranks to completion. Throws std::runtime_error if a process cannot be started.
LaunchResult Launch(const LaunchOptions& opt);

// A TCP port that was free a moment ago (bind to port 0 on the loopback).
int FreePort();

// "exited with code 3" / "was killed by signal 9 (Killed)".
std::string DescribeExit(const RankExit& e);

}  // namespace moebench
