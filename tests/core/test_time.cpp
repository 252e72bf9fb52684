// The timestamp helpers (harness/util/time.h).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "harness/util/time.h"

namespace moebench {
namespace {

std::chrono::system_clock::time_point FromMillis(int64_t millis) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(millis));
}

int64_t ToMillis(std::chrono::system_clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count();
}

TEST(TimeTest, FormatsKnownInstants) {
  EXPECT_EQ(FormatIso8601(FromMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatIso8601(FromMillis(-1)), "1969-12-31T23:59:59.999Z");
  // 2000-03-01 is 30*365 + 7 leap days + 31 + 29 days = 11017 days after the epoch.
  EXPECT_EQ(FormatIso8601(FromMillis(11017LL * 86400000 + 1234)), "2000-03-01T00:00:01.234Z");
  EXPECT_EQ(FormatIso8601(FromMillis(11016LL * 86400000)), "2000-02-29T00:00:00.000Z");
  // 2024-01-01 is 54*365 + 13 leap days = 19723 days; 12:34:56.789 is 45296.789 s.
  EXPECT_EQ(FormatIso8601(FromMillis(19723LL * 86400000 + 45296789)), "2024-01-01T12:34:56.789Z");
}

TEST(TimeTest, ParsesWhatItFormats) {
  EXPECT_EQ(ToMillis(ParseIso8601("2024-01-01T12:34:56.789Z")), 19723LL * 86400000 + 45296789);
  EXPECT_EQ(ToMillis(ParseIso8601("2024-01-01T12:34:56Z")), 19723LL * 86400000 + 45296000);
  // Finer fractions are truncated to milliseconds.
  EXPECT_EQ(ToMillis(ParseIso8601("2024-01-01T12:34:56.789999Z")), 19723LL * 86400000 + 45296789);
  EXPECT_EQ(ToMillis(ParseIso8601("1969-12-31T23:59:59.999Z")), -1);
  const std::string now = NowIso8601();
  EXPECT_EQ(now.size(), 24u);
  EXPECT_EQ(FormatIso8601(ParseIso8601(now)), now);
}

TEST(TimeTest, RejectsMalformedTimestampsNamingThem) {
  for (const std::string bad :
       {"", "2024-01-01 12:34:56Z", "2024-13-01T00:00:00Z", "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00Zjunk"}) {
    try {
      ParseIso8601(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find("'" + bad + "'"), std::string::npos) << error.what();
    }
  }
}

// ---- run status ----------------------------------------------------------------------------

}  // namespace
}  // namespace moebench
