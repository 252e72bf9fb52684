#include "harness/comm/launcher.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>

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

}  // namespace

std::string DescribeExit(const RankExit& e) {
  if (e.signal != 0) {
    return "was killed by signal " + std::to_string(e.signal) + " (" + strsignal(e.signal) + ")";
  }
  return "exited with code " + std::to_string(e.exit_code);
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

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_interrupted = 0;

  std::vector<Child> kids(opt.nproc);
  for (int r = 0; r < opt.nproc; ++r) {
    int out_pipe[2], err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) {
      throw std::runtime_error(std::string("launch: pipe: ") + std::strerror(errno));
    }
    const pid_t parent = getpid();
    // Signals stay blocked across fork until the child has dropped the launcher's handlers:
    // a SIGTERM sent before that must still terminate it.
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &saved);
    const pid_t pid = fork();
    if (pid < 0) {
      sigprocmask(SIG_SETMASK, &saved, nullptr);
      throw std::runtime_error(std::string("launch: fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(111);  // the launcher died before prctl took effect
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      sigprocmask(SIG_SETMASK, &saved, nullptr);
      dup2(out_pipe[1], STDOUT_FILENO);
      dup2(err_pipe[1], STDERR_FILENO);
      close(out_pipe[0]);
      close(out_pipe[1]);
      close(err_pipe[0]);
      close(err_pipe[1]);
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(opt.nproc).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r % per_node).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(per_node).c_str(), 1);
      setenv("GROUP_RANK", std::to_string(r / per_node).c_str(), 1);
      setenv("MASTER_ADDR", opt.master_addr.c_str(), 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      // The ranks know that this launcher records how they end (harness/train/rank_watch.h).
      setenv("MOEBENCH_LAUNCHER", "1", 1);
      std::vector<char*> args;
      for (const auto& a : opt.argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      std::fprintf(stderr, "launch: cannot run %s: %s\n", args[0], std::strerror(errno));
      _exit(127);
    }
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    close(out_pipe[1]);
    close(err_pipe[1]);
    kids[r].rank = r;
    kids[r].pid = pid;
    kids[r].out_fd = out_pipe[0];
    kids[r].err_fd = err_pipe[0];
  }

  LaunchResult result;
  double kill_deadline = -1;
  bool terminated = false;
  auto terminate_rest = [&]() {
    if (terminated) return;
    terminated = true;
    for (auto& k : kids) {
      if (!k.done) kill(k.pid, SIGTERM);
    }
    kill_deadline = Now() + opt.grace_seconds;
  };
  // A first failure that is a failed collective (Note [Which rank failed]), not yet named.
  RankExit pending_collective;
  double pending_deadline = -1;
  auto name_failure = [&](const RankExit& e) {
    result.first_failed_rank = e.rank;
    result.exit_code = e.exit_code;
    result.first_failure = "rank " + std::to_string(e.rank) + " " + DescribeExit(e);
    std::fprintf(stderr, "launch: %s; stopping the other ranks\n", result.first_failure.c_str());
    pending_deadline = -1;
    terminate_rest();
  };
  int running = opt.nproc;
  while (running > 0 || std::any_of(kids.begin(), kids.end(), [](const Child& k) {
           return k.out_fd >= 0 || k.err_fd >= 0;
         })) {
    std::vector<pollfd> fds;
    std::vector<std::pair<int, bool>> who;  // (rank, is_stderr)
    for (auto& k : kids) {
      if (k.out_fd >= 0) {
        fds.push_back({k.out_fd, POLLIN, 0});
        who.push_back({k.rank, false});
      }
      if (k.err_fd >= 0) {
        fds.push_back({k.err_fd, POLLIN, 0});
        who.push_back({k.rank, true});
      }
    }
    if (!fds.empty())
      poll(fds.data(), fds.size(), 100);
    else
      usleep(50 * 1000);
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Child& k = kids[who[i].first];
      int& fd = who[i].second ? k.err_fd : k.out_fd;
      std::string& buf = who[i].second ? k.err_buf : k.out_buf;
      FILE* to = who[i].second ? stderr : stdout;
      const std::string prefix = opt.prefix_output ? "[rank " + std::to_string(k.rank) + "] " : "";
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
    for (auto& k : kids) {
      if (k.done) continue;
      int status = 0;
      const pid_t p = waitpid(k.pid, &status, WNOHANG);
      if (p != k.pid) continue;
      k.done = true;
      --running;
      RankExit e;
      e.rank = k.rank;
      if (WIFSIGNALED(status)) {
        e.signal = WTERMSIG(status);
        e.exit_code = 128 + e.signal;
      } else {
        e.exit_code = WEXITSTATUS(status);
      }
      result.exits.push_back(e);
      if (e.exit_code != 0 && result.first_failed_rank < 0 && !terminated) {
        if (e.exit_code != kExitCollectiveFailed) {
          name_failure(e);
        } else if (pending_deadline < 0) {
          pending_collective = e;
          pending_deadline = Now() + kCollectiveGraceSeconds;
        }
      }
    }
    if (pending_deadline >= 0 && (Now() > pending_deadline || running == 0)) {
      name_failure(pending_collective);
    }
    if (g_interrupted && !terminated) {
      std::fprintf(stderr, "launch: interrupted (signal %d); stopping the ranks\n",
                   static_cast<int>(g_interrupted));
      result.exit_code = 128 + g_interrupted;
      result.first_failure = "the launcher was interrupted by signal " +
                             std::to_string(static_cast<int>(g_interrupted));
      terminate_rest();
    }
    if (terminated && kill_deadline > 0 && Now() > kill_deadline) {
      for (auto& k : kids) {
        if (!k.done) kill(k.pid, SIGKILL);
      }
      kill_deadline = -1;
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace moebench
