// The sacreBLEU tokenizers and the Python-compatible text helpers they rest on. Expected outputs
// are derived by hand from the mteval / sacreBLEU rules quoted in harness/bleu/tokenizer.h.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bleu/tokenizer.h"
#include "harness/bleu/unicode_text.h"

namespace moebench {
namespace {

// ---- 13a ---------------------------------------------------------------------------------------

TEST(BleuTokenizer13a, SplitsPunctuationFromWords) {
  EXPECT_EQ(Tokenize("Hello, world!", "13a"), "Hello , world !");
}

TEST(BleuTokenizer13a, KeepsDecimalPointAndThousandsSeparatorBetweenDigits) {
  EXPECT_EQ(Tokenize("It costs 3.5 dollars, or 1,000 cents.", "13a"),
            "It costs 3.5 dollars , or 1,000 cents .");
}

TEST(BleuTokenizer13a, SplitsSentenceFinalPeriodAfterANumberThanksToPadding) {
  // `([\.,])([^0-9])` needs a character after the period: the padding space provides it.
  EXPECT_EQ(Tokenize("in 2020.", "13a"), "in 2020 .");
}

TEST(BleuTokenizer13a, SplitsDashOnlyAfterADigit) {
  EXPECT_EQ(Tokenize("pages 3-4 and well-known", "13a"), "pages 3 - 4 and well-known");
}

TEST(BleuTokenizer13a, UnescapesHtmlEntitiesBeforeSplitting) {
  EXPECT_EQ(Tokenize("&quot;Yes&quot; &amp; &lt;no&gt;", "13a"), "\" Yes \" & < no >");
}

TEST(BleuTokenizer13a, UnescapesInSacreBleuOrderSoAmpQuotStaysAnEntity) {
  // &quot; is replaced before &amp;, so "&amp;quot;" only becomes "&quot;", whose '&' and ';'
  // are then split off as ASCII punctuation.
  EXPECT_EQ(Tokenize("&amp;quot;", "13a"), "& quot ;");
}

TEST(BleuTokenizer13a, DropsSkippedMarkerAndKeepsApostrophes) {
  EXPECT_EQ(Tokenize("a <skipped> b don't", "13a"), "a b don't");
}

TEST(BleuTokenizer13a, SplitsAsciiSymbols) {
  EXPECT_EQ(Tokenize("a+b=c (x) $5 50% #1 @me a/b", "13a"),
            "a + b = c ( x ) $ 5 50 % # 1 @ me a / b");
}

TEST(BleuTokenizer13a, CollapsesUnicodeWhitespace) {
  // U+00A0 NO-BREAK SPACE and U+3000 IDEOGRAPHIC SPACE separate tokens, as in Python's split().
  EXPECT_EQ(Tokenize("a\xC2\xA0\xC2\xA0"
                     "b\xE3\x80\x80"
                     "c",
                     "13a"),
            "a b c");
}

// ---- intl --------------------------------------------------------------------------------------

TEST(BleuTokenizerIntl, SplitsUnicodePunctuationAndSymbolsButNotBetweenDigits) {
  // “ ” are Pi/Pf punctuation, '$' is a currency symbol, ï is a letter.
  EXPECT_EQ(Tokenize("Hello, \xE2\x80\x9Cworld\xE2\x80\x9D! 1,000 3.5 $5 na\xC3\xAFve", "intl"),
            "Hello , \xE2\x80\x9C world \xE2\x80\x9D ! 1,000 3.5 $ 5 na\xC3\xAFve");
}

TEST(BleuTokenizerIntl, SplitsInvertedQuestionMarkAndDash) {
  // "2-3": the dash sits between numbers and stays; "x-1": it follows a letter and is split.
  EXPECT_EQ(Tokenize("\xC2\xBFQu\xC3\xA9? x-1 2-3", "intl"), "\xC2\xBF Qu\xC3\xA9 ? x - 1 2-3");
}

TEST(BleuTokenizerIntl, KeepsSentenceFinalPeriodOnANumberLikeMteval14) {
  EXPECT_EQ(Tokenize("in 2020.", "intl"), "in 2020.");
}

TEST(BleuTokenizerIntl, DoesNotUnescapeEntities) {
  EXPECT_EQ(Tokenize("&quot;", "intl"), "& quot ;");
}

// ---- zh ----------------------------------------------------------------------------------------

TEST(BleuTokenizerZh, SplitsEveryChineseCharacterAndAppliesThe13aRules) {
  EXPECT_EQ(
      Tokenize("\xE6\x88\x91\xE7\x88\xB1\xE5\x8C\x97\xE4\xBA\xAC\xE3\x80\x82Hello, world!", "zh"),
      "\xE6\x88\x91 \xE7\x88\xB1 \xE5\x8C\x97 \xE4\xBA\xAC \xE3\x80\x82 Hello , world !");
}

TEST(BleuTokenizerZh, SplitsFullwidthPunctuation) {
  // U+FF0C FULLWIDTH COMMA lies in sacreBLEU's U+FF00..U+FFEF range.
  EXPECT_EQ(Tokenize("a\xEF\xBC\x8C"
                     "b",
                     "zh"),
            "a \xEF\xBC\x8C b");
}

TEST(BleuTokenizerZh, ReproducesSacreBleuRangeTypoForGeneralPunctuation) {
  // See Note [zh ranges]: curly quotes (U+201C/U+201D) count as Chinese, CJK Extension B
  // (U+20000) does not.
  EXPECT_EQ(Tokenize("\xE2\x80\x9Cquoted\xE2\x80\x9D", "zh"), "\xE2\x80\x9C quoted \xE2\x80\x9D");
  EXPECT_EQ(Tokenize("a\xF0\xA0\x80\x80"
                     "b",
                     "zh"),
            "a\xF0\xA0\x80\x80"
            "b");
}

TEST(BleuTokenizerZh, HasNo13aPaddingSoAFinalNumberKeepsItsPeriod) {
  EXPECT_EQ(Tokenize("\xE5\x85\xB1"
                     "2020.",
                     "zh"),
            "\xE5\x85\xB1 2020.");
}

// ---- char and none -----------------------------------------------------------------------------

TEST(BleuTokenizerChar, PutsASpaceBetweenEveryCodePoint) {
  // Python's " ".join("ab c"): the original space becomes a token surrounded by spaces.
  EXPECT_EQ(Tokenize("ab c", "char"), "a b   c");
  EXPECT_EQ(Tokenize("n\xC3\xA9", "char"), "n \xC3\xA9");
}

TEST(BleuTokenizerNone, ReturnsTheTextUnchanged) {
  EXPECT_EQ(Tokenize("Hello,  world!", "none"), "Hello,  world!");
}

TEST(BleuTokenizer, RejectsUnknownNameAndListsValidOnes) {
  try {
    Tokenize("x", "moses");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("moses"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("13a"), std::string::npos);
  }
}

TEST(BleuTokenizer, RejectsInvalidUtf8) {
  EXPECT_THROW(Tokenize("bad \xFF byte", "13a"), std::runtime_error);
  // Overlong encoding of '/' and a UTF-16 surrogate are not UTF-8 either.
  EXPECT_THROW(Tokenize("\xC0\xAF", "intl"), std::runtime_error);
  EXPECT_THROW(Tokenize("\xED\xA0\x80", "char"), std::runtime_error);
}

// ---- Python str semantics
// ------------------------------------------------------------------------

TEST(BleuUnicodeText, SplitWhitespaceFollowsPythonIsspace) {
  const std::vector<std::string> expected = {"a", "b", "c", "d"};
  EXPECT_EQ(SplitWhitespace("  a\xC2\xA0"
                            "b\xE3\x80\x80"
                            "c\t\x1F"
                            "d \n"),
            expected);
  // U+200B ZERO WIDTH SPACE is not whitespace for Python.
  EXPECT_EQ(SplitWhitespace("a\xE2\x80\x8B"
                            "b")
                .size(),
            1u);
}

TEST(BleuUnicodeText, RStripRemovesTrailingUnicodeWhitespaceOnly) {
  EXPECT_EQ(RStripWhitespace("  a b \r\xC2\xA0"), "  a b");
}

TEST(BleuUnicodeText, LowerUsesFullCaseMapping) {
  // Python: "ÄÖÜ ΣΑΣ İ".lower() == "äöü σας i̇" (final sigma, dotted I -> i + U+0307).
  EXPECT_EQ(LowerUnicode("\xC3\x84\xC3\x96\xC3\x9C \xCE\xA3\xCE\x91\xCE\xA3 \xC4\xB0"),
            "\xC3\xA4\xC3\xB6\xC3\xBC \xCF\x83\xCE\xB1\xCF\x82 i\xCC\x87");
  EXPECT_EQ(LowerUnicode("The CAT"), "the cat");
}

TEST(BleuUnicodeText, DecodeEncodeRoundTrip) {
  const std::string text = "a\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80";
  const std::u32string decoded = DecodeUtf8(text);
  ASSERT_EQ(decoded.size(), 4u);
  EXPECT_EQ(decoded[3], U'\U0001F600');
  EXPECT_EQ(EncodeUtf8(decoded), text);
  EXPECT_EQ(Utf8Problem(text), "");
  EXPECT_NE(Utf8Problem("ok\xE4\xBD"), "");
}

}  // namespace
}  // namespace moebench
