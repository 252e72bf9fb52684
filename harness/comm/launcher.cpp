#include "harness/comm/launcher.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "harness/util/process.h"

namespace moebench {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void OnSignal(int sig) { g_interrupted = sig; }

struct Child {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;
  std::string out_buf, err_buf;
  bool done = false;
};

void Emit(const std::string& prefix, std::string& buf, bool flush_all, FILE* to) {
  size_t start = 0;
  for (;;) {
    const size_t nl = buf.find('\n', start);
    if (nl == std::string::npos) break;
    std::fprintf(to, "%s%.*s\n", prefix.c_str(), static_cast<int>(nl - start), buf.data() + start);
    start = nl + 1;
  }
  buf.erase(0, start);
  if (flush_all && !buf.empty()) {
    std::fprintf(to, "%s%s\n", prefix.c_str(), buf.c_str());
    buf.clear();
  }
  std::fflush(to);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// SIGINT and SIGTERM set g_interrupted while the ranks run; the old handlers come back after.
class InterruptHandlers {
 public:
  InterruptHandlers() {
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    g_interrupted = 0;
  }
  ~InterruptHandlers() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptHandlers(const InterruptHandlers&) = delete;
  InterruptHandlers& operator=(const InterruptHandlers&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// Starts rank `rank` with the torchrun variables, its stdout and stderr into pipes the launcher
// reads. Children get PR_SET_PDEATHSIG (SIGTERM): killing the launcher does not leave ranks.
Child StartRank(const LaunchOptions& opt, int rank, int per_node, int port) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("launch: pipe: ") + std::strerror(errno));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw std::runtime_error(std::string("launch: pipe: ") + std::strerror(err));
  }
  SpawnOptions so;
  so.search_path = true;
  so.stdout_fd = out_pipe[1];
  so.stderr_fd = err_pipe[1];
  so.death_signal = SIGTERM;
  so.orphan_exit_code = 111;
  // Signals stay blocked across fork until the child has dropped the launcher's handlers: a
  // SIGTERM sent before that must still terminate it.
  so.default_signals = true;
  so.set_env = {{"RANK", std::to_string(rank)},
                {"WORLD_SIZE", std::to_string(opt.nproc)},
                {"LOCAL_RANK", std::to_string(rank % per_node)},
                {"LOCAL_WORLD_SIZE", std::to_string(per_node)},
                {"GROUP_RANK", std::to_string(rank / per_node)},
                {"MASTER_ADDR", opt.master_addr},
                {"MASTER_PORT", std::to_string(port)},
                // The ranks know that this launcher records how they end
                // (harness/train/rank_watch.h).
                {"MOEBENCH_LAUNCHER", "1"}};
  so.exec_error_prefix = "launch: cannot run " + opt.argv[0] + ": ";
  Child child;
  child.rank = rank;
  try {
    child.pid = Spawn(opt.argv, so);
  } catch (const std::exception& e) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    throw std::runtime_error(std::string("launch: ") + e.what());
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  child.out_fd = out_pipe[0];
  child.err_fd = err_pipe[0];
  return child;
}

// Watches the ranks to the end: passes their output on, records their exits, names the first
// failure (Note [Which rank failed]) and stops the others (SIGTERM, then SIGKILL after the grace
// period).
class RankSupervisor {
 public:
  RankSupervisor(const LaunchOptions& opt, std::vector<Child> kids)
      : opt_(opt), kids_(std::move(kids)), running_(static_cast<int>(kids_.size())) {}

  LaunchResult Run() {
    while (running_ > 0 || AnyOutputOpen()) {
      PassOutputOn();
      ReapRanks();
      if (pending_deadline_ >= 0 && (Now() > pending_deadline_ || running_ == 0)) {
        NameFailure(pending_collective_);
      }
      if (g_interrupted && !terminated_) {
        std::fprintf(stderr, "launch: interrupted (signal %d); stopping the ranks\n",
                     static_cast<int>(g_interrupted));
        result_.exit_code = 128 + g_interrupted;
        result_.first_failure = "the launcher was interrupted by signal " +
                                std::to_string(static_cast<int>(g_interrupted));
        TerminateRest();
      }
      if (terminated_ && kill_deadline_ > 0 && Now() > kill_deadline_) {
        for (auto& k : kids_) {
          if (!k.done) kill(k.pid, SIGKILL);
        }
        kill_deadline_ = -1;
      }
    }
    return result_;
  }

 private:
  bool AnyOutputOpen() const {
    return std::any_of(kids_.begin(), kids_.end(),
                       [](const Child& k) { return k.out_fd >= 0 || k.err_fd >= 0; });
  }

  void TerminateRest() {
    if (terminated_) return;
    terminated_ = true;
    for (auto& k : kids_) {
      if (!k.done) kill(k.pid, SIGTERM);
    }
    kill_deadline_ = Now() + opt_.grace_seconds;
  }

  void NameFailure(const RankExit& e) {
    result_.first_failed_rank = e.rank;
    result_.exit_code = e.exit_code;
    result_.first_failure = "rank " + std::to_string(e.rank) + " " + DescribeExit(e);
    std::fprintf(stderr, "launch: %s; stopping the other ranks\n", result_.first_failure.c_str());
    pending_deadline_ = -1;
    TerminateRest();
  }

  // Waits up to 100 ms for output, then passes on each rank's complete lines.
  void PassOutputOn() {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, bool>> who;  // (rank, is_stderr)
    for (auto& k : kids_) {
      if (k.out_fd >= 0) {
        fds.push_back({k.out_fd, POLLIN, 0});
        who.emplace_back(k.rank, false);
      }
      if (k.err_fd >= 0) {
        fds.push_back({k.err_fd, POLLIN, 0});
        who.emplace_back(k.rank, true);
      }
    }
    if (!fds.empty())
      poll(fds.data(), fds.size(), 100);
    else
      usleep(50 * 1000);
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Child& k = kids_[who[i].first];
      int& fd = who[i].second ? k.err_fd : k.out_fd;
      std::string& buf = who[i].second ? k.err_buf : k.out_buf;
      FILE* to = who[i].second ? stderr : stdout;
      const std::string prefix = opt_.prefix_output ? "[rank " + std::to_string(k.rank) + "] " : "";
      char chunk[4096];
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n > 0) {
        buf.append(chunk, static_cast<size_t>(n));
        Emit(prefix, buf, false, to);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        Emit(prefix, buf, true, to);
        close(fd);
        fd = -1;
      }
    }
  }

  // Records the ranks that have ended; the first failure is named at once unless it is a failed
  // collective, which waits kCollectiveGraceSeconds for the rank that caused it.
  void ReapRanks() {
    for (auto& k : kids_) {
      if (k.done) continue;
      const std::optional<ExitStatus> status = PollExit(k.pid);
      if (!status) continue;
      k.done = true;
      --running_;
      RankExit e;
      e.rank = k.rank;
      e.exit_code = status->code;
      e.signal = status->signal;
      result_.exits.push_back(e);
      if (e.exit_code != 0 && result_.first_failed_rank < 0 && !terminated_) {
        if (e.exit_code != kExitCollectiveFailed) {
          NameFailure(e);
        } else if (pending_deadline_ < 0) {
          pending_collective_ = e;
          pending_deadline_ = Now() + kCollectiveGraceSeconds;
        }
      }
    }
  }

  const LaunchOptions& opt_;
  std::vector<Child> kids_;
  int running_;
  LaunchResult result_;
  double kill_deadline_ = -1;
  bool terminated_ = false;
  // A first failure that is a failed collective (Note [Which rank failed]), not yet named.
  RankExit pending_collective_;
  double pending_deadline_ = -1;
};

}  // namespace

std::string DescribeExit(const RankExit& e) {
  ExitStatus status;
  status.code = e.exit_code;
  status.signal = e.signal;
  return ExitText(status);
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("FreePort: socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string err = std::strerror(errno);
    close(fd);
    throw std::runtime_error("FreePort: " + err);
  }
  const int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

LaunchResult Launch(const LaunchOptions& opt) {
  if (opt.nproc < 1) throw std::invalid_argument("launch: --nproc must be >= 1");
  if (opt.argv.empty()) throw std::invalid_argument("launch: no command to run");
  const int per_node = opt.ranks_per_node > 0 ? opt.ranks_per_node : opt.nproc;
  if (per_node > opt.nproc || opt.nproc % per_node != 0) {
    throw std::invalid_argument("launch: --nproc (" + std::to_string(opt.nproc) +
                                ") must be a multiple of the ranks per node (" +
                                std::to_string(per_node) + ")");
  }
  const int port = opt.master_port > 0 ? opt.master_port : FreePort();
  InterruptHandlers handlers;
  std::vector<Child> kids;
  kids.reserve(opt.nproc);
  for (int r = 0; r < opt.nproc; ++r) kids.push_back(StartRank(opt, r, per_node, port));
  return RankSupervisor(opt, std::move(kids)).Run();
}

}  // namespace moebench
