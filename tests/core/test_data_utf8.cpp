// UTF-8 validation/encoding and legacy charset conversion.
#include <gtest/gtest.h>

#include <string>

#include "datasets/charset.h"
#include "harness/util/utf8.h"

namespace moebench {
namespace {

TEST(IsValidUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
}

TEST(IsValidUtf8, RejectsIllFormedSequencesAndReportsTheOffset) {
  struct Case {
    std::string text;
    size_t offset;
  };
  const Case cases[] = {
      {"ab\x80", 2},            // stray continuation byte
      {"a\xC0\xAF", 1},         // overlong '/'
      {"\xE0\x80\xAF", 0},      // overlong 3-byte form
      {"xy\xED\xA0\x80", 2},    // UTF-16 surrogate U+D800
      {"\xF4\x90\x80\x80", 0},  // above U+10FFFF
      {"ok \xE2\x82", 3},       // truncated at the end
      {"\xC3(", 0},             // missing continuation
      {"\xF5\x80\x80\x80", 0},  // invalid lead byte
  };
  for (const Case& c : cases) {
    size_t offset = 99;
    EXPECT_FALSE(IsValidUtf8(c.text, &offset)) << c.text;
    EXPECT_EQ(offset, c.offset) << c.text;
  }
}

TEST(AppendUtf8, EncodesEachLength) {
  std::string out;
  for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F600u}) AppendUtf8(cp, out);
  EXPECT_EQ(out, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  std::string bad;
  AppendUtf8(0xD800, bad);
  EXPECT_EQ(bad, "\xEF\xBF\xBD");
}

TEST(NextCodePoint, DecodesAndAdvances) {
  std::string text =
      "\xC3\xA9"
      "a\xF0\x9F\x98\x80";
  size_t pos = 0;
  EXPECT_EQ(NextCodePoint(text, &pos), 0xE9u);
  EXPECT_EQ(pos, 2u);
  EXPECT_EQ(NextCodePoint(text, &pos), uint32_t('a'));
  EXPECT_EQ(NextCodePoint(text, &pos), 0x1F600u);
  EXPECT_EQ(pos, text.size());
}

TEST(ConvertToUtf8, ConvertsLegacyCharsets) {
  // 日本 in EUC-JP (JIS X 0208 rows 0x467C and 0x4B5C with the high bits set).
  EXPECT_EQ(ConvertToUtf8("\xC6\xFC\xCB\xDC", "EUC-JP"), "\xE6\x97\xA5\xE6\x9C\xAC");
  EXPECT_EQ(ConvertToUtf8("caf\xE9", "ISO-8859-1"), "caf\xC3\xA9");
  EXPECT_EQ(ConvertToUtf8("\xC1\xD2", "KOI8-R"), "\xD0\xB0\xD1\x80");  // "ар"
  EXPECT_EQ(ConvertToUtf8("", "EUC-JP"), "");
}

TEST(ConvertToUtf8, RejectsUnknownCharsetsAndInvalidBytes) {
  try {
    ConvertToUtf8("x", "NO-SUCH-CHARSET");
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("NO-SUCH-CHARSET"), std::string::npos);
  }
  EXPECT_THROW(ConvertToUtf8("\xC6", "EUC-JP"), std::runtime_error);  // half a character
}

}  // namespace
}  // namespace moebench
