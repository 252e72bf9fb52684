// Wall-clock timestamps as the results database stores them: ISO-8601, UTC, milliseconds,
// e.g. "2024-05-01T12:34:56.789Z". Fixed width, so text order equals time order in SQL.
#pragma once

#include <chrono>
#include <string>

namespace moebench {

// The current time, e.g. "2024-05-01T12:34:56.789Z".
std::string NowIso8601();

// Formats a time point, truncated to milliseconds, as "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::string FormatIso8601(std::chrono::system_clock::time_point time);

// Milliseconds on the monotonic clock, for timing intervals.
inline double SteadyNowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z" (1 to 9 fraction digits, kept to milliseconds).
// Throws std::runtime_error naming the text when it is not in that form.
std::chrono::system_clock::time_point ParseIso8601(const std::string& text);

}  // namespace moebench
