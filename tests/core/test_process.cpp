// Child processes (harness/util/process.h): exit codes, signals, environment, folder, output,
// and this program's own path.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness/util/process.h"

namespace moebench {
namespace {

// Runs argv with its stdout (when `out`) and stderr (when `err`) into a pipe; returns its exit
// code and sets *text to everything written there.
int RunCapturing(const std::vector<std::string>& argv, SpawnOptions o, bool out, bool err,
                 std::string* text) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  if (out) o.stdout_fd = fds[1];
  if (err) o.stderr_fd = fds[1];
  const pid_t pid = Spawn(argv, o);
  close(fds[1]);
  char buf[256];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) text->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  return WaitFor(pid).code;
}

TEST(Process, ExitCodeOfAShellCommand) {
  const ExitStatus s = WaitFor(Spawn({"/bin/sh", "-c", "exit 3"}));
  EXPECT_EQ(s.code, 3);
  EXPECT_EQ(s.signal, 0);
  EXPECT_EQ(ExitText(s), "exited with code 3");
}

TEST(Process, KilledBySignalIsNamed) {
  const ExitStatus s = WaitFor(Spawn({"/bin/sh", "-c", "kill -9 $$"}));
  EXPECT_EQ(s.signal, SIGKILL);
  EXPECT_EQ(s.code, 128 + 9);
  EXPECT_EQ(SignalName(s.signal), "SIGKILL");
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(ExitText(s), "was killed by signal 9 (Killed)");
}

TEST(Process, OwnPathIsTheTestBinary) {
  const std::string self = OwnExecutablePath();
  ASSERT_FALSE(self.empty());
  EXPECT_EQ(self.front(), '/');
  EXPECT_EQ(self.substr(self.rfind('/') + 1), "test_core");
  EXPECT_EQ(access(self.c_str(), X_OK), 0);
}

TEST(Process, EnvironmentAndFolderAreTheChildsOwn) {
  SpawnOptions o;
  o.set_env = {{"MOEBENCH_PROCESS_TEST", "one two"}, {"PATH", "/usr/bin:/bin"}};
  o.cwd = "/";
  // Exit 0 only when both the variable and the folder are as asked.
  const ExitStatus s =
      WaitFor(Spawn({"/bin/sh", "-c",
                     "[ \"$MOEBENCH_PROCESS_TEST\" = 'one two' ] && [ \"$(pwd)\" = / ] || exit 5"},
                    o));
  EXPECT_EQ(s.code, 0);
}

TEST(Process, AGivenEnvironmentReplacesOurs) {
  SpawnOptions o;
  o.environment = std::vector<std::string>{"ONLY=1"};
  const ExitStatus s =
      WaitFor(Spawn({"/bin/sh", "-c", "[ \"$ONLY\" = 1 ] && [ -z \"$HOME\" ] || exit 4"}, o));
  EXPECT_EQ(s.code, 0);
}

TEST(Process, OutputGoesToTheGivenDescriptor) {
  std::string text;
  EXPECT_EQ(RunCapturing({"/bin/sh", "-c", "echo out; echo err >&2"}, {}, true, true, &text), 0);
  EXPECT_EQ(text, "out\nerr\n");
}

TEST(Process, AProgramThatCannotRunExits127WithTheReason) {
  SpawnOptions o;
  o.exec_error_prefix = "cannot run /nonexistent/program: ";
  std::string text;
  EXPECT_EQ(RunCapturing({"/nonexistent/program"}, o, false, true, &text), 127);
  EXPECT_EQ(text, "cannot run /nonexistent/program: No such file or directory\n");
}

TEST(Process, SearchPathFindsAProgramByName) {
  SpawnOptions o;
  o.search_path = true;
  o.quiet = true;
  EXPECT_EQ(WaitFor(Spawn({"sh", "-c", "exit 6"}, o)).code, 6);
}

TEST(Process, PollExitSeesTheEndWithoutWaiting) {
  const pid_t pid = Spawn({"/bin/sh", "-c", "exit 2"});
  std::optional<ExitStatus> s;
  for (int i = 0; i < 2000 && !s; ++i) {
    s = PollExit(pid);
    if (!s) usleep(5000);
  }
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->code, 2);
}

}  // namespace
}  // namespace moebench
