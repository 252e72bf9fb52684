// The sweep's progress: on a terminal, a block redrawn in place (counts, one line per running
// run with its step, loss and tokens/s, an ETA); otherwise plain log lines, one per event and
// a summary every `summary_every` seconds.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace moebench {

struct RunningRun {
  std::string id, label;
  int64_t step = 0, max_steps = 0;
  double train_loss = -1;  // < 0: not logged yet
  double tokens_per_s = -1;
  double elapsed_s = 0;
};

struct ProgressSnapshot {
  int total = 0, finished = 0, failed = 0, pending = 0;
  std::vector<RunningRun> running;
  double elapsed_s = 0;
  double eta_s = -1;  // < 0: unknown
};

// "1h02m", "4m05s", "12s".
std::string FormatDuration(double seconds);

class ProgressDisplay {
 public:
  ProgressDisplay(std::ostream& out, bool terminal, double summary_every = 30);
  // A line that stays (a run started, finished or failed).
  void Event(const std::string& line);
  void Update(const ProgressSnapshot& snapshot);
  // Clears the live block (terminal) before the final summary.
  void Close();

 private:
  void Clear();
  std::string Summary(const ProgressSnapshot& s) const;

  std::ostream& out_;
  bool terminal_;
  double summary_every_;
  int drawn_lines_ = 0;
  double last_summary_ = -1e9;
  ProgressSnapshot last_;
};

}  // namespace moebench
