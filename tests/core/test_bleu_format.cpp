// sacreBLEU-style output: score lines, JSON layout, signatures.
#include <gtest/gtest.h>

#include <string>

#include "harness/bleu/score_format.h"
#include "harness/bleu/signature.h"

namespace moebench {
namespace {

const char kSignature[] = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1";

TEST(BleuScoreFormat, FixedRoundsTheBinaryValueHalfToEven) {
  // 0.125 is exact in binary: a true tie, rounded to even like Python's f"{0.125:.2f}".
  EXPECT_EQ(FormatFixed(0.125, 2), "0.12");
  // 2.675 is stored as 2.67499999...: rounds down, as in Python.
  EXPECT_EQ(FormatFixed(2.675, 2), "2.67");
  EXPECT_EQ(FormatFixed(48.530827, 1), "48.5");
}

TEST(BleuScoreFormat, TextLineWithAndWithoutSignature) {
  const ScoreReport report{"BLEU", 20.84,
                           "54.4/26.6/14.9/8.7 (BP = 1.000 ratio = 1.026 hyp_len = "
                           "62880 ref_len = 61287)",
                           kSignature};
  EXPECT_EQ(FormatScoreText(report, 1),
            std::string("BLEU|") + kSignature +
                " = 20.8 54.4/26.6/14.9/8.7 (BP = 1.000 ratio = 1.026 hyp_len = 62880 ref_len = "
                "61287)");
  EXPECT_EQ(FormatScoreText(report, 1, true), "20.8");
  EXPECT_EQ(FormatScoreText({"chrF2", 52.049, "", ""}, 2), "chrF2 = 52.05");
}

TEST(BleuScoreFormat, JsonLikePythonJsonDumpsIndentOne) {
  const ScoreReport report{"BLEU", 100.0,
                           "100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 "
                           "hyp_len = 6 ref_len = 6)",
                           kSignature};
  EXPECT_EQ(FormatScoreJson(report, 1),
            "{\n"
            " \"name\": \"BLEU\",\n"
            " \"score\": 100.0,\n"
            " \"signature\": \"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1\",\n"
            " \"verbose_score\": \"100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 "
            "ref_len = 6)\",\n"
            " \"nrefs\": \"1\",\n"
            " \"case\": \"mixed\",\n"
            " \"eff\": \"no\",\n"
            " \"tok\": \"13a\",\n"
            " \"smooth\": \"exp\",\n"
            " \"version\": \"2.3.1\"\n"
            "}");
}

TEST(BleuScoreFormat, JsonScoreIsTheRoundedValueAndChrfHasNoVerbose) {
  const std::string json =
      FormatScoreJson({"chrF2", 52.349, "", "nrefs:1|nc:6|version:2.3.1"}, 1, -1);
  EXPECT_EQ(json,
            "{\"name\":\"chrF2\",\"score\":52.3,\"signature\":\"nrefs:1|nc:6|version:2.3.1\","
            "\"nrefs\":\"1\",\"nc\":\"6\",\"version\":\"2.3.1\"}");
}

TEST(BleuSignature, BuildShortenAndBootstrapFields) {
  EXPECT_EQ(
      BuildSignature("1", {{"case", "mixed"}, {"eff", "no"}, {"tok", "13a"}, {"smooth", "exp"}}),
      kSignature);
  EXPECT_EQ(ShortenSignature(kSignature), "#:1|c:mixed|e:no|tok:13a|s:exp|v:2.3.1");
  EXPECT_EQ(AddBootstrapFields(kSignature, 1000, "12345"),
            "nrefs:1|bs:1000|seed:12345|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1");
  EXPECT_EQ(ParseSignature("a:1|b:x").size(), 2u);
  EXPECT_THROW(ParseSignature("a:1|broken"), std::runtime_error);
}

}  // namespace
}  // namespace moebench
