#include "harness/util/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>

extern char** environ;

namespace moebench {

namespace {

constexpr const char* kSelfExeLink = "/proc/self/exe";

// The environment entries with `set` applied over `base` (same name: replaced, in place).
std::vector<std::string> MergedEnvironment(
    std::vector<std::string> base, const std::vector<std::pair<std::string, std::string>>& set) {
  for (const auto& [key, value] : set) {
    const std::string prefix = key + "=";
    bool replaced = false;
    for (std::string& entry : base) {
      if (entry.compare(0, prefix.size(), prefix) == 0) {
        entry = prefix + value;
        replaced = true;
      }
    }
    if (!replaced) base.push_back(prefix + value);
  }
  return base;
}

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

void WriteAll(int fd, const char* text, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, text, n);
    if (w <= 0) return;
    text += w;
    n -= static_cast<size_t>(w);
  }
}

// The child's side of Spawn, between fork and exec: async-signal-safe calls only.
[[noreturn]] void RunChild(const SpawnOptions& opt, pid_t parent, const sigset_t* saved_mask,
                           char* const* argv, char* const* envp) {
  if (opt.new_process_group) setpgid(0, 0);
  if (opt.death_signal != 0) {
    prctl(PR_SET_PDEATHSIG, opt.death_signal);
    if (getppid() != parent) _exit(opt.orphan_exit_code);  // died before prctl took effect
  }
  if (opt.default_signals) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigprocmask(SIG_SETMASK, saved_mask, nullptr);
  }
  if (opt.stdin_null) {
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    if (null_fd > STDERR_FILENO) close(null_fd);
  }
  if (opt.quiet) {
    const int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd < 0) _exit(127);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    if (null_fd > STDERR_FILENO) close(null_fd);
  }
  if (opt.stdout_fd >= 0) dup2(opt.stdout_fd, STDOUT_FILENO);
  if (opt.stderr_fd >= 0) dup2(opt.stderr_fd, STDERR_FILENO);
  if (opt.cwd.empty() || chdir(opt.cwd.c_str()) == 0) {
    if (opt.search_path) {
      execvpe(argv[0], argv, envp);
    } else {
      execve(argv[0], argv, envp);
    }
  }
  if (!opt.exec_error_prefix.empty()) {
    const char* text = strerror(errno);
    WriteAll(STDERR_FILENO, opt.exec_error_prefix.data(), opt.exec_error_prefix.size());
    WriteAll(STDERR_FILENO, text, std::strlen(text));
    WriteAll(STDERR_FILENO, "\n", 1);
  }
  _exit(127);
}

}  // namespace

std::string OwnExecutablePath() {
  char buf[4096];
  const ssize_t n = readlink(kSelfExeLink, buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

void ReExecuteSelf(char** argv) { execv(kSelfExeLink, argv); }

pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& opt) {
  if (argv.empty()) throw std::invalid_argument("Spawn: no program to run");
  // Everything the child needs is prepared before fork.
  std::vector<std::string> env;
  if (opt.environment) {
    env = *opt.environment;
  } else {
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  }
  env = MergedEnvironment(std::move(env), opt.set_env);
  const std::vector<char*> args = Pointers(argv);
  const std::vector<char*> envp = Pointers(env);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t parent = getpid();
  sigset_t block, saved;
  if (opt.default_signals) {
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &saved);
  }
  const pid_t pid = fork();
  if (pid == 0) RunChild(opt, parent, &saved, args.data(), envp.data());
  const int fork_errno = errno;
  if (opt.default_signals) sigprocmask(SIG_SETMASK, &saved, nullptr);
  if (pid < 0) {
    throw std::runtime_error("cannot start " + argv[0] + ": fork: " + std::strerror(fork_errno));
  }
  if (opt.new_process_group) setpgid(pid, pid);  // also here: whichever runs first
  return pid;
}

ExitStatus DecodeWaitStatus(int status) {
  ExitStatus out;
  if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
    out.code = 128 + out.signal;
  } else if (WIFEXITED(status)) {
    out.code = WEXITSTATUS(status);
  } else {
    out.code = 1;
  }
  return out;
}

ExitStatus WaitFor(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      throw std::runtime_error("waitpid(" + std::to_string(pid) + "): " + std::strerror(errno));
    }
  }
  return DecodeWaitStatus(status);
}

std::optional<ExitStatus> PollExit(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return std::nullopt;
  return DecodeWaitStatus(status);
}

std::optional<std::pair<pid_t, ExitStatus>> PollAnyChild() {
  int status = 0;
  const pid_t pid = waitpid(-1, &status, WNOHANG);
  if (pid <= 0) return std::nullopt;
  return std::make_pair(pid, DecodeWaitStatus(status));
}

std::string SignalName(int signal) {
  const char* name = sigabbrev_np(signal);
  return std::string("SIG") + (name != nullptr ? name : "?");
}

std::string ExitText(const ExitStatus& status) {
  if (status.signal != 0) {
    return "was killed by signal " + std::to_string(status.signal) + " (" +
           strsignal(status.signal) + ")";
  }
  return "exited with code " + std::to_string(status.code);
}

}  // namespace moebench
