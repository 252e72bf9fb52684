// Helpers shared by the subcommands: the --db option, table output, knob parsing.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace moebench {

constexpr const char* kDefaultDb = "results/moebench.db";

void AddDbOption(CLI::App& cmd, std::string& db);

// Prints rows as an aligned text table, CSV, JSON or Markdown (format: table | csv | json | md).
void PrintRows(const std::vector<std::string>& columns,
               const std::vector<std::vector<std::string>>& rows, const std::string& format);

// "key=value" strings -> map; throws naming the bad entry.
std::map<std::string, std::string> ParseAssignments(const std::vector<std::string>& items,
                                                    const std::string& what);

std::string FormatNumber(double v);

// Subcommand registration (one file each).
void RegisterTrainCommand(CLI::App& app);
void RegisterLaunchCommand(CLI::App& app);  // launch (local ranks, torchrun-style)

// The command line moebench was started with (set by main).
const std::vector<std::string>& ProgramArgs();
void SetProgramArgs(int argc, char** argv);
void RegisterInspectCommands(CLI::App& app);  // runs, show, query
void RegisterMethodsCommand(CLI::App& app);   // methods, sizes
void RegisterDataCommand(CLI::App& app);      // data prepare
void RegisterRouteCommand(CLI::App& app);     // route
void RegisterSweepCommands(CLI::App& app);    // sweep
void RegisterReportCommand(CLI::App& app);    // report (runs reports/ with Python)
void RegisterCompareCommand(CLI::App& app);   // compare RUN_A RUN_B
void RegisterDiffCommand(CLI::App& app);      // diff RUN_A RUN_B
void RegisterBestCommand(CLI::App& app);      // best --metric KEY
void RegisterExportCommand(CLI::App& app);    // export
void RegisterCollectCommand(CLI::App& app);   // collect DIR

}  // namespace moebench
