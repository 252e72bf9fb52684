#include "harness/util/time.h"

#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace moebench {
namespace {

constexpr int64_t kMillisPerSecond = 1000;
constexpr int64_t kSecondsPerDay = 86400;

// Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's
// civil-date algorithms). Written out instead of timegm/gmtime so that the result does not
// depend on the C library or the TZ variable.
int64_t DaysFromCivil(int64_t year, int64_t month, int64_t day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

void CivilFromDays(int64_t days, int64_t* year, int64_t* month, int64_t* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t day_of_era = days - era * 146097;
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_index = (5 * day_of_year + 2) / 153;
  *day = day_of_year - (153 * month_index + 2) / 5 + 1;
  *month = month_index < 10 ? month_index + 3 : month_index - 9;
  *year = year_of_era + era * 400 + (*month <= 2 ? 1 : 0);
}

// Floor division, so that times before 1970 still split into a day and a time of day.
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

[[noreturn]] void ThrowBadTimestamp(const std::string& text, const char* why) {
  throw std::runtime_error("timestamp '" + text +
                           "' is not ISO-8601 UTC (YYYY-MM-DDTHH:MM:SS.mmmZ): " + why);
}

// Reads exactly `width` decimal digits at text[*pos].
int64_t ReadDigits(const std::string& text, size_t* pos, size_t width) {
  int64_t value = 0;
  for (size_t i = 0; i < width; i++) {
    if (*pos >= text.size() || text[*pos] < '0' || text[*pos] > '9') {
      ThrowBadTimestamp(text, "expected a digit");
    }
    value = value * 10 + (text[*pos] - '0');
    (*pos)++;
  }
  return value;
}

void ExpectChar(const std::string& text, size_t* pos, char expected) {
  if (*pos >= text.size() || text[*pos] != expected) {
    ThrowBadTimestamp(text, (std::string("expected '") + expected + "'").c_str());
  }
  (*pos)++;
}

}  // namespace

std::string NowIso8601() { return FormatIso8601(std::chrono::system_clock::now()); }

std::string FormatIso8601(std::chrono::system_clock::time_point time) {
  const int64_t millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
  const int64_t days = FloorDiv(millis, kSecondsPerDay * kMillisPerSecond);
  const int64_t millis_of_day = millis - days * kSecondsPerDay * kMillisPerSecond;
  int64_t year = 0, month = 0, day = 0;
  CivilFromDays(days, &year, &month, &day);
  const int64_t seconds_of_day = millis_of_day / kMillisPerSecond;
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(seconds_of_day / 3600),
                static_cast<long long>(seconds_of_day / 60 % 60),
                static_cast<long long>(seconds_of_day % 60),
                static_cast<long long>(millis_of_day % kMillisPerSecond));
  return buffer;
}

std::chrono::system_clock::time_point ParseIso8601(const std::string& text) {
  size_t pos = 0;
  const int64_t year = ReadDigits(text, &pos, 4);
  ExpectChar(text, &pos, '-');
  const int64_t month = ReadDigits(text, &pos, 2);
  ExpectChar(text, &pos, '-');
  const int64_t day = ReadDigits(text, &pos, 2);
  ExpectChar(text, &pos, 'T');
  const int64_t hour = ReadDigits(text, &pos, 2);
  ExpectChar(text, &pos, ':');
  const int64_t minute = ReadDigits(text, &pos, 2);
  ExpectChar(text, &pos, ':');
  const int64_t second = ReadDigits(text, &pos, 2);
  int64_t millis = 0;
  if (pos < text.size() && text[pos] == '.') {
    pos++;
    size_t digits = 0;
    int64_t scale = 100;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      millis += (text[pos] - '0') * scale;
      scale /= 10;
      pos++;
      digits++;
    }
    if (digits == 0 || digits > 9) ThrowBadTimestamp(text, "expected 1 to 9 fraction digits");
  }
  ExpectChar(text, &pos, 'Z');
  if (pos != text.size()) ThrowBadTimestamp(text, "trailing characters");
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    ThrowBadTimestamp(text, "a field is out of range");
  }
  const int64_t seconds =
      DaysFromCivil(year, month, day) * kSecondsPerDay + hour * 3600 + minute * 60 + second;
  return std::chrono::system_clock::time_point(
      std::chrono::milliseconds(seconds * kMillisPerSecond + millis));
}

}  // namespace moebench
