// `moebench report`: runs the Python report package (reports/, matplotlib) over the database.
// The figures are Python's job; this command finds an interpreter that has matplotlib and the
// source tree's reports/ folder, and passes the options through (`python3 -m reports`, whose
// argument names are in reports/cli.py: --db, --sweep, --out, --format, --column, --target-bleu,
// --alpha, --bootstrap-samples, --figure, --run-ids).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/store/store.h"
#include "harness/sweep/run_filter.h"
#include "harness/util/process.h"

#ifndef MOEBENCH_SOURCE_DIR
#define MOEBENCH_SOURCE_DIR ""
#endif

namespace moebench {

namespace {

// Debian's matplotlib is for the system interpreter; the python3 first on PATH may be another
// one without it (a virtual environment, a conda install), so /usr/bin/python3 comes first.
constexpr const char* kSystemPython = "/usr/bin/python3";
constexpr const char* kMatplotlibPackage = "python3-matplotlib";

struct ReportArgs {
  std::string db = kDefaultDb, out = "reports-out", format = "png";
  std::string column = "two";  // paper width of the figures: one | two
  std::vector<std::string> sweeps;
  std::string figure;  // only this figure (reports/figures.py FIGURE_NAMES)
  std::string where;   // only the runs this filter selects (the runs --where language)
  double target_bleu = -1;
  double alpha = 0.05;           // the claims' significance level, in (0, 1)
  int bootstrap_samples = 1000;  // the BLEU claims' paired-bootstrap resamples, >= 100
  bool no_figures = false;       // tables, claims and page only
};

constexpr int kMinBootstrapSamples = 100;

// The shortest decimal text that reads back as `value` (0.01 -> "0.01", not "0.010000").
std::string ShortestDecimal(double value) {
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream text;
    text.precision(precision);
    text << value;
    if (std::stod(text.str()) == value) return text.str();
  }
  std::ostringstream text;
  text.precision(17);
  text << value;
  return text.str();
}

void CheckReportArgs(const ReportArgs& a) {
  // NaN fails both comparisons.
  if (!(a.alpha > 0 && a.alpha < 1)) {
    throw std::invalid_argument("report: --alpha must be in (0, 1), got " +
                                ShortestDecimal(a.alpha));
  }
  if (a.bootstrap_samples < kMinBootstrapSamples) {
    throw std::invalid_argument(
        "report: --bootstrap-samples must be >= " + std::to_string(kMinBootstrapSamples) +
        ", got " + std::to_string(a.bootstrap_samples) +
        " (the smallest one-sided p is 1 / (samples + 1))");
  }
}

bool IsExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Runs argv with `env_extra` added to the environment; returns the exit status (128 + signal
// when killed, 127 when it cannot be started). quiet: its output goes to /dev/null.
int RunAndWait(const std::vector<std::string>& argv,
               const std::vector<std::pair<std::string, std::string>>& env_extra, bool quiet) {
  SpawnOptions so;
  so.set_env = env_extra;
  so.quiet = quiet;
  try {
    return WaitFor(Spawn(argv, so)).code;
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("report: ") + e.what());
  }
}

// Candidates in order: $MOEBENCH_PYTHON alone when set; else /usr/bin/python3, then every
// python3 on PATH.
std::vector<std::string> PythonCandidates() {
  if (const char* forced = std::getenv("MOEBENCH_PYTHON"); forced != nullptr && *forced) {
    return {forced};
  }
  std::vector<std::string> out = {kSystemPython};
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/python3";
    bool seen = false;
    for (const auto& c : out) seen = seen || c == candidate;
    if (!seen) out.push_back(candidate);
  }
  return out;
}

std::string FindPythonWithMatplotlib() {
  std::string tried;
  for (const std::string& python : PythonCandidates()) {
    if (!IsExecutable(python)) continue;
    tried += (tried.empty() ? "" : ", ") + python;
    if (RunAndWait({python, "-c", "import matplotlib, sqlite3"}, {}, true) == 0) return python;
  }
  throw std::runtime_error("report: no Python 3 interpreter with matplotlib found (tried: " +
                           (tried.empty() ? std::string("none found") : tried) +
                           "); install Debian's package " + kMatplotlibPackage +
                           " (apt-get install " + kMatplotlibPackage +
                           "), or set MOEBENCH_PYTHON to an interpreter that has matplotlib");
}

// The folder that holds reports/: $MOEBENCH_SOURCE_DIR, else the source tree this binary was
// built from.
std::string FindSourceDir() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("MOEBENCH_SOURCE_DIR"); env != nullptr && *env) {
    candidates.push_back(env);
  }
  candidates.push_back(MOEBENCH_SOURCE_DIR);
  for (const std::string& dir : candidates) {
    if (!dir.empty() && IsFile(dir + "/reports/__main__.py")) return dir;
  }
  std::string tried;
  for (const std::string& dir : candidates) {
    if (!dir.empty()) tried += (tried.empty() ? "" : ", ") + dir + "/reports";
  }
  throw std::runtime_error("report: cannot find the reports/ package (tried: " +
                           (tried.empty() ? std::string("nothing") : tried) +
                           "); set MOEBENCH_SOURCE_DIR to the moebench source tree");
}

// The ids of the runs --where selects, comma-separated; the filter is compiled here, by the one
// filter compiler (harness/sweep/run_filter.h), and Python receives ids only.
std::string SelectedRunIds(const ReportArgs& a) {
  Store store(a.db, Store::Mode::kReadOnly);
  std::string ids;
  for (const std::string& id : SelectRunIds(store, "", "", a.where, "")) {
    ids += (ids.empty() ? "" : ",") + id;
  }
  if (ids.empty()) {
    throw std::invalid_argument("report: --where \"" + a.where + "\" selects no run in " + a.db);
  }
  return ids;
}

void RunReport(const ReportArgs& a) {
  CheckReportArgs(a);
  struct stat st;
  if (stat(a.out.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    throw std::invalid_argument("report: --out '" + a.out +
                                "' is a file; give a folder (it is created when missing)");
  }
  const std::string run_ids = a.where.empty() ? std::string() : SelectedRunIds(a);
  const std::string source_dir = FindSourceDir();
  const std::string python = FindPythonWithMatplotlib();
  std::vector<std::string> argv = {python,  "-m",  "reports",  "--db",  a.db,
                                   "--out", a.out, "--format", a.format};
  argv.push_back("--column");
  argv.push_back(a.column);
  for (const std::string& s : a.sweeps) {
    argv.push_back("--sweep");
    argv.push_back(s);
  }
  if (a.target_bleu >= 0) {
    argv.push_back("--target-bleu");
    argv.push_back(ShortestDecimal(a.target_bleu));
  }
  argv.push_back("--alpha");
  argv.push_back(ShortestDecimal(a.alpha));
  argv.push_back("--bootstrap-samples");
  argv.push_back(std::to_string(a.bootstrap_samples));
  if (!a.figure.empty()) {
    argv.push_back("--figure");
    argv.push_back(a.figure);
  }
  if (a.no_figures) {
    argv.push_back("--no-figures");
  }
  if (!run_ids.empty()) {
    argv.push_back("--run-ids");
    argv.push_back(run_ids);
  }
  std::string pythonpath = source_dir;
  if (const char* old = std::getenv("PYTHONPATH"); old != nullptr && *old) {
    pythonpath += std::string(":") + old;
  }
  // MOEBENCH_BIN: the report calls `moebench bleu --paired-bs` for the BLEU claims'
  // significance (reports/bleu_test.py: one BLEU implementation, the C++ one). MPLBACKEND: no
  // display is needed or wanted.
  const int status = RunAndWait(
      argv,
      {{"PYTHONPATH", pythonpath}, {"MOEBENCH_BIN", OwnExecutablePath()}, {"MPLBACKEND", "Agg"}},
      false);
  if (status != 0) {
    throw std::runtime_error("report: " + python + " -m reports exited with status " +
                             std::to_string(status));
  }
}

}  // namespace

void RegisterReportCommand(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "report", "figures, tables and the claims check from the database (HTML + Markdown)");
  AddDbOption(*cmd, args->db);
  cmd->add_option("--sweep", args->sweeps, "only runs of this sweep (name or id; repeatable)");
  cmd->add_option("--out", args->out, "output folder")->capture_default_str();
  cmd->add_option("--format", args->format, "figure format: png | pdf | svg")
      ->check(CLI::IsMember({"png", "pdf", "svg"}))
      ->capture_default_str();
  cmd->add_option("--column", args->column,
                  "paper width of every figure: one (a column of a two-column paper, 3.4 in; "
                  "panels stacked) or two (the full text width, 7 in; panels side by side); "
                  "8 pt text either way")
      ->check(CLI::IsMember({"one", "two"}))
      ->capture_default_str();
  cmd->add_option("--target-bleu", args->target_bleu,
                  "validation BLEU for time-to-target (default: 0.8 x the median final BLEU)");
  cmd->add_option("--alpha", args->alpha,
                  "significance level of the claims' verdicts, after Holm-Bonferroni over the "
                  "claims tested; in (0, 1)")
      ->capture_default_str();
  cmd->add_option("--bootstrap-samples", args->bootstrap_samples,
                  "resamples of the BLEU claims' paired bootstrap (>= 100)")
      ->capture_default_str();
  cmd->add_option("--figure", args->figure,
                  "draw only this figure (OUT/figures/NAME.{png,pdf,svg}), no tables or page: "
                  "bleu_vs_wallclock, bleu_vs_steps, time_to_target, comm_bytes, bleu_vs_size, "
                  "self_slimmable, expert_load, dropped_tokens, train_loss, knob_sweep");
  cmd->add_flag("--no-figures", args->no_figures,
                "tables, claims and page without figures (matplotlib's drawing is most of a "
                "report's time)")
      ->excludes("--figure");
  cmd->add_option("--where", args->where,
                  "only the runs this filter selects (the runs --where language)");
  cmd->callback([args]() { RunReport(*args); });
}

}  // namespace moebench
