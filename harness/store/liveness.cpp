#include "harness/store/liveness.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "harness/util/time.h"

namespace moebench {

// Note [Stale runs]
// A `running` row outlives its process when the process is killed with SIGKILL, by the OOM
// killer, or with its machine. Nothing in the dying process can record that, so whoever reads
// the row decides. Only writers act on it: the sweep runner puts such runs back to pending
// before it starts runs, and `train` takes a dead process's run over
// (Store::ClaimRunForWriter). The read verbs (`moebench runs`, `show`) open the database
// read-only and only show the run as interrupted. Requeueing is conditional on the pid still
// being the one judged dead, so two runners racing, or a run that a new process took over
// meanwhile, never get clobbered. Pid reuse is
// why a live pid must also be a moebench process that is not a zombie.

std::string ThisHost() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

bool ProcessAlive(int64_t pid) {
  if (pid <= 0) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;  // no /proc: trust kill()
  std::string line;
  std::getline(stat, line);
  // "pid (comm) state ...": comm may contain spaces and parentheses; the last ')' ends it.
  const size_t open = line.find('(');
  const size_t close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= line.size()) {
    return true;
  }
  const std::string comm = line.substr(open + 1, close - open - 1);
  const char state = line[close + 2];
  if (state == 'Z' || state == 'X') return false;
  // The kernel keeps the first 15 bytes of the executable's name. A process of the same
  // program as the one asking also counts (a test binary judging its own children).
  static const std::string self_comm = [] {
    std::ifstream in("/proc/self/comm");
    std::string name;
    std::getline(in, name);
    return name;
  }();
  return comm.rfind("moebench", 0) == 0 || (!self_comm.empty() && comm == self_comm);
}

std::string StaleReason(const RunRow& run, const std::string& this_host,
                        std::chrono::seconds stale_after) {
  if (run.status != RunStatus::kRunning) return "";
  if (run.host == this_host && run.pid > 0) {
    if (ProcessAlive(run.pid)) return "";
    return "interrupted: its process " + std::to_string(run.pid) + " on " + run.host +
           " is gone (last heartbeat " + (run.heartbeat_at.empty() ? "never" : run.heartbeat_at) +
           ")";
  }
  const std::string& last = run.heartbeat_at.empty() ? run.started_at : run.heartbeat_at;
  if (last.empty()) return "interrupted: no heartbeat and no start time recorded";
  std::chrono::system_clock::time_point when;
  try {
    when = ParseIso8601(last);
  } catch (const std::exception&) {
    return "";
  }
  const auto age = std::chrono::system_clock::now() - when;
  if (age < stale_after) return "";
  return "interrupted: no heartbeat from " + (run.host.empty() ? "its host" : run.host) +
         " since " + last + " (more than " + std::to_string(stale_after.count()) + " s)";
}

}  // namespace moebench
