#include "harness/sweep/progress.h"

#include <cstdio>

namespace moebench {

std::string FormatDuration(double seconds) {
  if (seconds < 0) return "?";
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s / 60) % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lds", s);
  }
  return buf;
}

ProgressDisplay::ProgressDisplay(std::ostream& out, bool terminal, double summary_every)
    : out_(out), terminal_(terminal), summary_every_(summary_every) {}

std::string ProgressDisplay::Summary(const ProgressSnapshot& s) const {
  return std::to_string(s.finished) + "/" + std::to_string(s.total) + " done, " +
         std::to_string(s.running.size()) + " running, " + std::to_string(s.failed) + " failed, " +
         std::to_string(s.pending) + " pending; elapsed " + FormatDuration(s.elapsed_s) + ", ETA " +
         (s.eta_s < 0 ? "?" : FormatDuration(s.eta_s));
}

void ProgressDisplay::Clear() {
  if (!terminal_ || drawn_lines_ == 0) return;
  // Up to the first line of the block, then erase to the end of the screen.
  out_ << "\x1b[" << drawn_lines_ << "F\x1b[J";
  drawn_lines_ = 0;
}

void ProgressDisplay::Event(const std::string& line) {
  Clear();
  out_ << "[sweep] " << line << "\n";
  if (terminal_) Update(last_);
  out_.flush();
}

void ProgressDisplay::Update(const ProgressSnapshot& snapshot) {
  last_ = snapshot;
  if (!terminal_) {
    if (snapshot.elapsed_s - last_summary_ >= summary_every_) {
      last_summary_ = snapshot.elapsed_s;
      out_ << "[sweep] " << Summary(snapshot) << "\n";
      out_.flush();
    }
    return;
  }
  Clear();
  out_ << Summary(snapshot) << "\n";
  drawn_lines_ = 1;
  for (const RunningRun& r : snapshot.running) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "  %-16s %-28s step %5lld/%-5lld", r.id.c_str(),
                  r.label.c_str(), static_cast<long long>(r.step),
                  static_cast<long long>(r.max_steps));
    std::string line = buf;
    if (r.train_loss >= 0) {
      std::snprintf(buf, sizeof(buf), "  loss %.3f", r.train_loss);
      line += buf;
    }
    if (r.tokens_per_s >= 0) {
      std::snprintf(buf, sizeof(buf), "  %.0f tok/s", r.tokens_per_s);
      line += buf;
    }
    line += "  " + FormatDuration(r.elapsed_s);
    out_ << line << "\n";
    drawn_lines_++;
  }
  out_.flush();
}

void ProgressDisplay::Close() {
  Clear();
  out_.flush();
}

}  // namespace moebench
