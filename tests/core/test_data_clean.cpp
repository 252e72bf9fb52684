// The l10n cleaning rules, one hand-written case per behaviour.
#include <gtest/gtest.h>

#include <string>

#include "datasets/l10n_clean.h"

namespace moebench {
namespace {

TEST(StripFormatSpecifiers, RemovesPrintfConversions) {
  EXPECT_EQ(StripFormatSpecifiers("Copied %d files to %s"), "Copied files to");
  EXPECT_EQ(StripFormatSpecifiers("%5.2f%% done, %-10s left, %lu bytes, %zu items"),
            "% done, left, bytes, items");
  EXPECT_EQ(StripFormatSpecifiers("cannot open %s."), "cannot open.");
  EXPECT_EQ(StripFormatSpecifiers("%'d rows, %lld total, %I64d big, %x hex"),
            "rows, total, big, hex");
}

TEST(StripFormatSpecifiers, RemovesPositionalPythonQtBraceAndShellPlaceholders) {
  EXPECT_EQ(StripFormatSpecifiers("move %2$s before %1$s now"), "move before now");
  EXPECT_EQ(StripFormatSpecifiers("%(count)d new messages arrived"), "new messages arrived");
  EXPECT_EQ(StripFormatSpecifiers("%1 of %2 done"), "of done");
  EXPECT_EQ(StripFormatSpecifiers("{0} of {name} at {1:.2f} and {}"), "of at and");
  EXPECT_EQ(StripFormatSpecifiers("set ${HOME} and $PATH first"), "set and first");
  EXPECT_EQ(StripFormatSpecifiers("%BInstall%b the following packages"),
            "Install the following packages");
  EXPECT_EQ(StripFormatSpecifiers("on %b %d %Y at"), "on at");
}

TEST(StripFormatSpecifiers, KeepsPercentSignsAndDollarAmountsThatAreText) {
  EXPECT_EQ(StripFormatSpecifiers("50% done"), "50% done");
  EXPECT_EQ(StripFormatSpecifiers("100%% sure"), "100% sure");
  EXPECT_EQ(StripFormatSpecifiers("costs $5 today"), "costs $5 today");
  EXPECT_EQ(StripFormatSpecifiers("a {b c} d"), "a {b c} d");
}

TEST(StripFormatSpecifiers, DropsEmptiedQuotesAndDanglingPunctuation) {
  EXPECT_EQ(StripFormatSpecifiers("cannot stat '%s': %s"), "cannot stat");
  EXPECT_EQ(StripFormatSpecifiers("Datei \xC2\xBB%s\xC2\xAB nicht gefunden"),
            "Datei nicht gefunden");
  EXPECT_EQ(StripFormatSpecifiers("fichier \xC2\xAB\xC2\xA0%s\xC2\xA0\xC2\xBB introuvable"),
            "fichier introuvable");
  EXPECT_EQ(StripFormatSpecifiers("\xE3\x80\x8C%s\xE3\x80\x8D\xE3\x82\x92\xE9\x96\x8B\xE3\x81"
                                  "\x91\xE3\x81\xBE\xE3\x81\x9B\xE3\x82\x93: %s"),
            "\xE3\x82\x92\xE9\x96\x8B\xE3\x81\x91\xE3\x81\xBE\xE3\x81\x9B\xE3\x82\x93");
  EXPECT_EQ(StripFormatSpecifiers("%s: invalid option (%s)"), "invalid option");
  // Without a placeholder nothing changes, not even an empty pair.
  EXPECT_EQ(StripFormatSpecifiers("call f() now:"), "call f() now:");
}

TEST(StripMarkup, RemovesKnownTagsAndKeepsAngleBracketWords) {
  EXPECT_EQ(StripMarkup("<b>Bold</b> and <i>italic</i>"), "Bold and italic");
  EXPECT_EQ(StripMarkup("<a href=\"https://x.org\">link</a> here"), "link here");
  EXPECT_EQ(StripMarkup("line one<br/>line two"), "line one line two");
  EXPECT_EQ(StripMarkup("<span weight=\"bold\">Hi</span>"), "Hi");
  EXPECT_EQ(StripMarkup("Usage: cp <file> <dir>"), "Usage: cp <file> <dir>");
  EXPECT_EQ(StripMarkup("a < b and c > d"), "a < b and c > d");
}

TEST(StripMarkup, DecodesEntities) {
  EXPECT_EQ(StripMarkup("Tom &amp; Jerry &lt;3 &quot;x&quot; &apos;y&apos;"),
            "Tom & Jerry <3 \"x\" 'y'");
  EXPECT_EQ(StripMarkup("caf&#233; &#x20AC;"), "caf\xC3\xA9 \xE2\x82\xAC");
  EXPECT_EQ(StripMarkup("a&nbsp;b"),
            "a\xC2\xA0"
            "b");
  EXPECT_EQ(StripMarkup("R&D stays"), "R&D stays");
}

TEST(StripMarkup, RemovesGnupgHelpMarkers) {
  EXPECT_EQ(StripMarkup("|FILE|read options from FILE"), "read options from FILE");
  EXPECT_EQ(StripMarkup("@ Options:"), " Options:");
  EXPECT_EQ(StripMarkup("|a b| is a pipe"), "|a b| is a pipe");
}

TEST(StripAccelerators, RemovesGtkMnemonicUnderscore) {
  EXPECT_EQ(StripAccelerators("_File"), "File");
  EXPECT_EQ(StripAccelerators("Save _As\xE2\x80\xA6"), "Save As\xE2\x80\xA6");
  EXPECT_EQ(StripAccelerators("Op_en"), "Open");
  EXPECT_EQ(StripAccelerators("_\xD0\xA4\xD0\xB0\xD0\xB9\xD0\xBB"),
            "\xD0\xA4\xD0\xB0\xD0\xB9\xD0\xBB");
}

TEST(StripAccelerators, LeavesIdentifierUnderscoresAlone) {
  EXPECT_EQ(StripAccelerators("set GTK_DEBUG first"), "set GTK_DEBUG first");
  EXPECT_EQ(StripAccelerators("use file_name or dir_name"), "use file_name or dir_name");
  EXPECT_EQ(StripAccelerators("trailing _"), "trailing _");
}

TEST(StripAccelerators, RemovesAmpersandMnemonicButNotText) {
  EXPECT_EQ(StripAccelerators("&File"), "File");
  EXPECT_EQ(StripAccelerators("Sa&ve now"), "Save now");
  EXPECT_EQ(StripAccelerators("salt & pepper"), "salt & pepper");
  EXPECT_EQ(StripAccelerators("a && b"), "a && b");
  EXPECT_EQ(StripAccelerators("Tom &amp; Jerry"), "Tom &amp; Jerry");
}

TEST(StripAccelerators, RemovesParenthesisedCjkAccelerators) {
  // "ファイル(_F)" and "開く（&O）..." (full-width parentheses)
  EXPECT_EQ(StripAccelerators("\xE3\x83\x95\xE3\x82\xA1\xE3\x82\xA4\xE3\x83\xAB(_F)"),
            "\xE3\x83\x95\xE3\x82\xA1\xE3\x82\xA4\xE3\x83\xAB");
  EXPECT_EQ(StripAccelerators("\xE9\x96\x8B\xE3\x81\x8F\xEF\xBC\x88&O\xEF\xBC\x89..."),
            "\xE9\x96\x8B\xE3\x81\x8F...");
  EXPECT_EQ(StripAccelerators("Open (_O)"), "Open");
  EXPECT_EQ(StripAccelerators("see (a) and (b)"), "see (a) and (b)");
}

TEST(NormalizeWhitespace, CollapsesNewlinesTabsAndUnicodeSpaces) {
  EXPECT_EQ(NormalizeWhitespace("  one\ntwo\t\tthree \n"), "one two three");
  EXPECT_EQ(NormalizeWhitespace("a\xC2\xA0:\xE2\x80\xAF"
                                "b\xE3\x80\x80"
                                "c"),
            "a : b c");
  EXPECT_EQ(NormalizeWhitespace("soft\xC2\xADhyphen zero\xE2\x80\x8Bwidth"),
            "softhyphen zerowidth");
  EXPECT_EQ(NormalizeWhitespace("\n\n"), "");
}

TEST(LooksLikeMojibake, FlagsBrokenTextOnly) {
  EXPECT_TRUE(LooksLikeMojibake("bad \xFF byte"));
  EXPECT_TRUE(LooksLikeMojibake("caf\xC3\x83\xC2\xA9"));  // "café" as UTF-8 read as Latin-1
  EXPECT_TRUE(LooksLikeMojibake("it\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2s"));   // "it’s" via CP1252
  EXPECT_TRUE(LooksLikeMojibake("\xC3\x90\xC2\xBF\xC3\x91\xE2\x82\xAC"));  // Cyrillic via Latin-1
  EXPECT_TRUE(LooksLikeMojibake("replacement \xEF\xBF\xBD char"));
  EXPECT_TRUE(LooksLikeMojibake("bell\x07"));
  EXPECT_FALSE(
      LooksLikeMojibake("caf\xC3\xA9 \xC3\xBC"
                        "ber \xD0\xBF\xD1\x80\xD0\xB8"));
  EXPECT_FALSE(LooksLikeMojibake("N\xC3\x83O"));  // Portuguese "NÃO"
  EXPECT_FALSE(LooksLikeMojibake("line\nbreak\ttab"));
}

TEST(CountWords, SplitsOnWhitespace) {
  EXPECT_EQ(CountWords(""), 0);
  EXPECT_EQ(CountWords("one"), 1);
  EXPECT_EQ(CountWords(" two  words "), 2);
}

TEST(CleanL10nPair, CleansBothSidesAndKeepsGoodPairs) {
  std::string src = "Cannot open <b>_file</b> '%s':\n%s\n";
  std::string tgt =
      "Datei \xC2\xBB%s\xC2\xAB kann nicht ge\xC3\xB6"
      "ffnet werden:\n%s\n";
  EXPECT_EQ(CleanL10nPair(src, tgt, L10nCleanOptions()), L10nDropReason::kKept);
  EXPECT_EQ(src, "Cannot open file");
  EXPECT_EQ(tgt,
            "Datei kann nicht ge\xC3\xB6"
            "ffnet werden");
}

TEST(CleanL10nPair, DropsByEachRule) {
  L10nCleanOptions opt;
  auto reason = [&](std::string src, std::string tgt) { return CleanL10nPair(src, tgt, opt); };
  EXPECT_EQ(reason("Open file", "\xC3\x83\xC2\xA9"), L10nDropReason::kMojibake);
  EXPECT_EQ(reason("Open \xFF", "Datei"), L10nDropReason::kMojibake);
  EXPECT_EQ(reason("%s %d", "%s %d"), L10nDropReason::kEmpty);
  EXPECT_EQ(reason("Open file", "%s"), L10nDropReason::kEmpty);
  EXPECT_EQ(reason("_Open",
                   "\xC3\x96"
                   "ffnen"),
            L10nDropReason::kTooShort);
  std::string long_src;
  for (int i = 0; i < 61; ++i) long_src += "word ";
  EXPECT_EQ(reason(long_src, "viele"), L10nDropReason::kTooLong);
  std::string sixty;
  for (int i = 0; i < 60; ++i) sixty += "word ";
  EXPECT_EQ(reason(sixty, "viele"), L10nDropReason::kKept);
  EXPECT_EQ(reason("GNU General Public License", "GNU General Public License"),
            L10nDropReason::kUntranslated);
  // Word limits count the English side only: a Chinese target has no spaces.
  EXPECT_EQ(reason("Open the file", "\xE6\x89\x93\xE5\xBC\x80\xE6\x96\x87\xE4\xBB\xB6"),
            L10nDropReason::kKept);
  EXPECT_STREQ(L10nDropReasonName(L10nDropReason::kTooShort), "too_short");
}

}  // namespace
}  // namespace moebench
