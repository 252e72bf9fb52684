// Shell quoting and running a shell command (the l10n recipe's apt-get and dpkg-deb, the sweep
// folder's git and Slurm scripts).
#pragma once

#include <string>

namespace moebench {

// `text` in single quotes for /bin/sh, with embedded single quotes escaped.
std::string ShellQuote(const std::string& text);

struct CommandResult {
  int exit_code = -1;  // the command's exit status; -1 when it did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh -c, stderr merged into stdout.
CommandResult RunCommand(const std::string& command);

}  // namespace moebench
