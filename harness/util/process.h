// Child processes and this program's own path: the one place that forks, executes, waits and
// words an exit status (the sweep runner, the launcher, `report`, `train --world-size`, the
// environment re-exec in main and the benchmarks all come here).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moebench {

// The absolute path of the running executable (read from /proc/self/exe); "" when it cannot be
// read. Callers that must have it say so in their own words.
std::string OwnExecutablePath();

// Re-executes this program in place with `argv` (e.g. after setting environment variables that
// libraries read only when they load). Returns only when the exec fails: then go on as we are.
void ReExecuteSelf(char** argv);

// How a child is started. The defaults inherit everything: environment, folder, stdin/out/err.
struct SpawnOptions {
  // The child's whole environment as "KEY=value" entries; unset: this process's environment.
  std::optional<std::vector<std::string>> environment;
  // Set in the child's environment over the above (replacing a variable of the same name).
  std::vector<std::pair<std::string, std::string>> set_env;
  std::string cwd;           // the child's working folder; "" : ours
  bool search_path = false;  // look argv[0] up on PATH (execvp) instead of running it as given
  bool stdin_null = false;   // stdin from /dev/null
  bool quiet = false;        // stdout and stderr to /dev/null
  int stdout_fd = -1;        // dup'ed onto the child's stdout (and stderr below); -1: inherit
  int stderr_fd = -1;
  bool new_process_group = false;  // the child leads its own process group (kill(-pid, ...))
  // Sent to the child when this process dies (PR_SET_PDEATHSIG); 0: none. A child whose parent
  // died before the setting took effect exits at once with orphan_exit_code.
  int death_signal = 0;
  int orphan_exit_code = 127;
  // SIGINT and SIGTERM are blocked across the fork and reset to their default action in the
  // child: for a parent that handles them itself, so that a signal sent to the child early still
  // ends it.
  bool default_signals = false;
  // When the exec (or entering cwd) fails the child writes this, then strerror(errno) and a
  // newline, to its stderr ("" : nothing) and exits with code 127.
  std::string exec_error_prefix;
};

// Starts argv[0] with arguments argv (argv must not be empty). Throws std::runtime_error when the
// process cannot be created (fork fails); a program that cannot be executed shows as exit code
// 127 of the child. Everything the child does between fork and exec is async-signal-safe (the
// environment and argument arrays are built before the fork).
pid_t Spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

// How a child ended.
struct ExitStatus {
  int code = 0;    // its exit code; 128 + signal when a signal killed it
  int signal = 0;  // the signal that killed it; 0 when it exited
};

// Decodes a waitpid status word.
ExitStatus DecodeWaitStatus(int status);

// Waits for `pid` to end (retrying when a signal interrupts the wait). Throws std::runtime_error
// when it is not our child.
ExitStatus WaitFor(pid_t pid);

// The exit of `pid` if it has ended, without waiting; std::nullopt while it runs.
std::optional<ExitStatus> PollExit(pid_t pid);

// Any child that has ended, without waiting; std::nullopt when none has.
std::optional<std::pair<pid_t, ExitStatus>> PollAnyChild();

// "SIGKILL" for 9; "SIG?" for a number that names no signal.
std::string SignalName(int signal);

// "exited with code 3" / "was killed by signal 9 (Killed)" (strsignal's description).
std::string ExitText(const ExitStatus& status);

}  // namespace moebench
