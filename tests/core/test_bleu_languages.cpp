// BLEU for every target language: the ja-mecab and zh tokenizers on hand-checked sentences, BLEU
// on Japanese and Chinese with hand-computed values, the language -> tokenizer choice, and the
// multilingual headline (the mean of per-language scores).
//
// The ja-mecab expectations are MeCab's segmentations with the IPA dictionary: the classic
// examples of MeCab's documentation, each also checked with `mecab -Owakati` (Debian's mecab
// 0.996 with mecab-ipadic-utf8) on this machine; JaMecab.AgreesWithTheMecabCommand repeats that
// check wherever the `mecab` command is installed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness/bleu/bleu.h"
#include "harness/bleu/chrf.h"
#include "harness/bleu/per_language.h"
#include "harness/bleu/tokenizer.h"

namespace moebench {
namespace {

constexpr double kTight = 1e-9;

BleuOptions Tok(const std::string& tokenizer) {
  BleuOptions opt;
  opt.tokenize = tokenizer;
  return opt;
}

// ---- ja-mecab ------------------------------------------------------------------------------

TEST(JaMecab, SegmentsLikeMecabWithTheIpaDictionary) {
  // MeCab's documentation example: sumomo (plum) / mo / momo (peach) / mo / momo / no / uchi.
  EXPECT_EQ(Tokenize("すもももももももものうち", "ja-mecab"), "すもも も もも も もも の うち");
  // watashi / wa (topic particle) / gakusei (student) / desu (copula) / 。
  EXPECT_EQ(Tokenize("私は学生です。", "ja-mecab"), "私 は 学生 です 。");
  // Tōkyō / to (metropolis suffix) / ni / sun-n (live, euphonic form) / de / i / masu.
  EXPECT_EQ(Tokenize("東京都に住んでいます", "ja-mecab"), "東京 都 に 住ん で い ます");
  // Latin text keeps its words; ASCII punctuation is a token of its own (symbol class).
  EXPECT_EQ(Tokenize("Hello, world!", "ja-mecab"), "Hello , world !");
}

TEST(JaMecab, StripsLikeSacreBleuAndSkipsSpaces) {
  // sacreBLEU strips the line and MeCab's output; MeCab skips ASCII spaces (char.def: SPACE).
  EXPECT_EQ(Tokenize("  私は  学生です。  ", "ja-mecab"), "私 は 学生 です 。");
  EXPECT_EQ(Tokenize("", "ja-mecab"), "");
  // U+3000 IDEOGRAPHIC SPACE is not in MeCab's SPACE class: inside the line it becomes a token
  // (checked with `mecab -Owakati`); at the ends Python's strip() removes it first.
  EXPECT_EQ(Tokenize("私は\u3000学生です。", "ja-mecab"), "私 は \u3000 学生 です 。");
  EXPECT_EQ(Tokenize("\u3000私は学生です。\u3000", "ja-mecab"), "私 は 学生 です 。");
}

// Runs `mecab -Owakati` on one line; empty optional-like flag when the command is missing.
bool MecabCommand(const std::string& line, std::string* out) {
  if (std::system("command -v mecab >/dev/null 2>&1") != 0) return false;
  const std::string path = ::testing::TempDir() + "moebench_mecab_input.txt";
  std::ofstream(path, std::ios::binary) << line << "\n";
  FILE* pipe = popen(("mecab -Owakati < '" + path + "'").c_str(), "r");
  if (pipe == nullptr) return false;
  std::string text;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, n);
  if (pclose(pipe) != 0) return false;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  *out = text;
  return true;
}

TEST(JaMecab, AgreesWithTheMecabCommand) {
  const std::vector<std::string> lines = {"すもももももももものうち",
                                          "吾輩は猫である。名前はまだ無い。",
                                          "日本語の文章を単語に分割する。",
                                          "ＭｅＣａｂで１２３円です",
                                          "東京スカイツリーの高さは634メートルです。",
                                          "「こんにちは」と彼は言った。"};
  for (const std::string& line : lines) {
    std::string expected;
    if (!MecabCommand(line, &expected)) GTEST_SKIP() << "the mecab command is not installed";
    EXPECT_EQ(Tokenize(line, "ja-mecab"), expected) << line;
  }
}

TEST(JaMecab, ThreadsShareTheModelSafely) {
  // Each thread gets its own tagger and lattice (Note [ja-mecab threads]).
  const std::string expected = "吾輩 は 猫 で ある 。 名前 は まだ 無い 。";
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        wrong[t] += Tokenize("吾輩は猫である。名前はまだ無い。", "ja-mecab") != expected;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong, (std::vector<int>{0, 0, 0, 0}));
}

TEST(JaMecab, SignatureNamesMecabVersionAndIpa) {
  // sacreBLEU's format: "ja-mecab-" + MeCab's version + "-IPA"; Debian's libmecab2 is 0.996.
  EXPECT_EQ(TokenizerSignature("ja-mecab"), "ja-mecab-0.996-IPA");
  EXPECT_EQ(TokenizerSignature("13a"), "13a");
  EXPECT_EQ(TokenizerSignature("zh"), "zh");
  EXPECT_THROW(TokenizerSignature("ko-mecab"), std::runtime_error);
}

TEST(JaMecab, BleuOnJapanese) {
  // hyp 吾輩 は 犬 で ある 。 名前 は もう 有る 。 (11 tokens)
  // ref 吾輩 は 猫 で ある 。 名前 は まだ 無い 。 (11 tokens), BP = 1.
  //   1-grams: 吾輩, は x2, で, ある, 。 x2, 名前 match; 犬, もう, 有る do not      8/11
  //   2-grams: 吾輩は, である, ある。, 。名前, 名前は                               5/10
  //   3-grams: である。, ある。名前, 。名前は                                        3/9
  //   4-grams: である。名前, ある。名前は                                            2/8
  const std::string hyp = "吾輩は犬である。名前はもう有る。";
  const std::string ref = "吾輩は猫である。名前はまだ無い。";
  const BleuScore s = CorpusBleu({hyp}, {{ref}}, Tok("ja-mecab"));
  EXPECT_EQ(s.counts, (std::vector<int64_t>{8, 5, 3, 2}));
  EXPECT_EQ(s.totals, (std::vector<int64_t>{11, 10, 9, 8}));
  EXPECT_NEAR(s.score, 100 * std::pow(8.0 / 11 * 5.0 / 10 * 3.0 / 9 * 2.0 / 8, 0.25), kTight);
  EXPECT_EQ(s.signature,
            "nrefs:1|case:mixed|eff:no|tok:ja-mecab-0.996-IPA|smooth:exp|version:2.3.1");
  // 13a finds no ASCII punctuation or spaces: each side is a single token and they differ.
  EXPECT_EQ(CorpusBleu({hyp}, {{ref}}).score, 0.0);
}

// ---- zh ------------------------------------------------------------------------------------

TEST(ZhTokenizer, SplitsCjkCharactersKeepsLatinWordsAndNumbers) {
  // Every CJK character (U+4E00..U+9FA5) and the fullwidth comma (U+FF0C, in U+FF00..U+FFEF)
  // is padded; then the 13a rules: '?' is split off, "3.5" keeps its point between digits.
  EXPECT_EQ(Tokenize("我有3.5个苹果，你呢?", "zh"), "我 有 3.5 个 苹 果 ， 你 呢 ?");
  EXPECT_EQ(Tokenize("我用Python编程", "zh"), "我 用 Python 编 程");
  // 。 (U+3002) lies in U+3000..U+303F.
  EXPECT_EQ(Tokenize("我爱北京天安门。", "zh"), "我 爱 北 京 天 安 门 。");
}

TEST(ZhTokenizer, BleuOnChinese) {
  // hyp 我 爱 北 京 。 (5 tokens), ref 我 爱 北 京 天 安 门 。 (8 tokens)
  //   1-grams: all 5 match                                       5/5
  //   2-grams: 我爱, 爱北, 北京 match; 京。 does not (ref: 京天)   3/4
  //   3-grams: 我爱北, 爱北京 match; 北京。 does not              2/3
  //   4-grams: 我爱北京 matches; 爱北京。 does not                1/2
  // BP = exp(1 - 8/5); BLEU = BP * (100 * 75 * 66.67 * 50)^(1/4) = 38.807.
  const BleuScore s = CorpusBleu({"我爱北京。"}, {{"我爱北京天安门。"}}, Tok("zh"));
  EXPECT_EQ(s.counts, (std::vector<int64_t>{5, 3, 2, 1}));
  EXPECT_EQ(s.totals, (std::vector<int64_t>{5, 4, 3, 2}));
  EXPECT_NEAR(s.bp, std::exp(1 - 8.0 / 5), kTight);
  EXPECT_NEAR(s.score, std::exp(-0.6) * std::pow(100.0 * 75 * 200 / 3 * 50, 0.25), kTight);
  EXPECT_NEAR(s.score, 38.806842947616985, 1e-9);
  EXPECT_EQ(s.signature, "nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.3.1");
}

// ---- language -> tokenizer -----------------------------------------------------------------

TEST(TokenizerForLanguage, ChineseAndJapaneseGetTheirTokenizersOthers13a) {
  EXPECT_EQ(TokenizerForLanguage("zh"), "zh");
  EXPECT_EQ(TokenizerForLanguage("zh_CN"), "zh");
  EXPECT_EQ(TokenizerForLanguage("zh_TW"), "zh");
  EXPECT_EQ(TokenizerForLanguage("zh-Hant"), "zh");
  EXPECT_EQ(TokenizerForLanguage("ZH"), "zh");
  EXPECT_EQ(TokenizerForLanguage("ja"), "ja-mecab");
  EXPECT_EQ(TokenizerForLanguage("ja_JP"), "ja-mecab");
  EXPECT_EQ(TokenizerForLanguage("de"), "13a");
  EXPECT_EQ(TokenizerForLanguage("pt_BR"), "13a");
  EXPECT_EQ(TokenizerForLanguage("ru"), "13a");
  EXPECT_EQ(TokenizerForLanguage("xa"), "13a");  // synthetic languages
  // The primary subtag decides, not a prefix: Zhuang (zha) and Javanese (jav) are not zh / ja.
  EXPECT_EQ(TokenizerForLanguage("zha"), "13a");
  EXPECT_EQ(TokenizerForLanguage("jav"), "13a");
  EXPECT_EQ(TokenizerForLanguage(""), "13a");
}

// ---- the multilingual headline -------------------------------------------------------------

TEST(ScoreByLanguage, HeadlineIsTheMeanOfPerLanguageScoresNotAPooledBleu) {
  // de: hyp = ref (13a, 4 tokens): BLEU 100, chrF 100.
  // fr: hyp "x y" / ref "p q": no match: BLEU 0; chrF: orders 1-2 have P = R = 0, orders 3-6
  //     have no n-grams: 0.
  // Mean: BLEU 50, chrF 50. Pooled with 13a the corpus would be counts {4, 3, 2, 1}, totals
  // {6, 4, 2, 1}, c = r = 6: 100 * (4/6 * 3/4)^(1/4) = 84.09, which is not what we report.
  const std::vector<std::string> hyps = {"a b c d", "x y"};
  const std::vector<std::string> refs = {"a b c d", "p q"};
  const std::vector<std::string> langs = {"de", "fr"};
  const auto scores = ScoreByLanguage(hyps, refs, langs);
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_NEAR(scores.at("de").bleu, 100.0, kTight);
  EXPECT_EQ(scores.at("fr").bleu, 0.0);
  EXPECT_NEAR(scores.at("").bleu, 50.0, kTight);
  EXPECT_NEAR(scores.at("").chrf, 50.0, kTight);
  EXPECT_NEAR(CorpusBleu(hyps, {refs}).score, 100 * std::pow(0.5, 0.25), kTight);  // pooled
  EXPECT_EQ(scores.at("").n_sentences, 2);
  const std::string sig13a = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1";
  EXPECT_EQ(scores.at("de").bleu_signature, sig13a);
  EXPECT_EQ(scores.at("").bleu_signature,
            "mean of per-language BLEU: de:" + sig13a + "; fr:" + sig13a);
  const std::string chrf_sig = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1";
  EXPECT_EQ(scores.at("").chrf_signature,
            "mean of per-language chrF2: de:" + chrf_sig + "; fr:" + chrf_sig);
}

TEST(ScoreByLanguage, EachLanguageUsesItsOwnTokenizer) {
  // de: hyp = ref: 100. ja: the Japanese pair of JaMecab.BleuOnJapanese (ja-mecab): 41.72...;
  // zh_CN: the pair of ZhTokenizer.BleuOnChinese (zh): 38.81... Mean of the three.
  const double ja = 100 * std::pow(8.0 / 11 * 5.0 / 10 * 3.0 / 9 * 2.0 / 8, 0.25);
  const double zh = std::exp(-0.6) * std::pow(100.0 * 75 * 200 / 3 * 50, 0.25);
  const auto scores = ScoreByLanguage(
      {"吾輩は犬である。名前はもう有る。", "the cat sat on the mat", "我爱北京。"},
      {"吾輩は猫である。名前はまだ無い。", "the cat sat on the mat", "我爱北京天安门。"},
      {"ja", "de", "zh_CN"});
  EXPECT_NEAR(scores.at("ja").bleu, ja, kTight);
  EXPECT_NEAR(scores.at("zh_CN").bleu, zh, kTight);
  EXPECT_NEAR(scores.at("de").bleu, 100.0, kTight);
  EXPECT_NEAR(scores.at("").bleu, (100.0 + ja + zh) / 3, kTight);
  EXPECT_EQ(scores.at("ja").bleu_signature,
            "nrefs:1|case:mixed|eff:no|tok:ja-mecab-0.996-IPA|smooth:exp|version:2.3.1");
  EXPECT_EQ(scores.at("zh_CN").bleu_signature,
            "nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.3.1");
  EXPECT_EQ(scores.at("").bleu_signature,
            "mean of per-language BLEU: de:" + scores.at("de").bleu_signature + "; ja:" +
                scores.at("ja").bleu_signature + "; zh_CN:" + scores.at("zh_CN").bleu_signature);
}

TEST(ScoreByLanguage, OneLanguageHeadlineEqualsThatLanguage) {
  // hyp "a b c d e" / ref "a b c x e": 4/5, 2/4, 1/3, 0/2 -> exp smoothing p4 = 100 / (2 * 2).
  const auto scores = ScoreByLanguage({"a b c d e"}, {"a b c x e"}, {"de"});
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_EQ(scores.at("").bleu, scores.at("de").bleu);
  EXPECT_EQ(scores.at("").chrf, scores.at("de").chrf);
  EXPECT_NEAR(scores.at("de").bleu, std::pow(80.0 * 50 * 100.0 / 3 * 25, 0.25), kTight);
}

TEST(ScoreByLanguage, RejectsBadInput) {
  EXPECT_TRUE(ScoreByLanguage({}, {}, {}).empty());
  EXPECT_THROW(ScoreByLanguage({"a"}, {"a", "b"}, {"de"}), std::runtime_error);
  EXPECT_THROW(ScoreByLanguage({"a"}, {"a"}, {""}), std::runtime_error);
}

// ---- statistics by language and the bootstrap of the mean -----------------------------------

TEST(StatisticsByLanguage, EachRowFillsTheBlockOfItsLanguage) {
  // Languages sorted: de (block 0), fr (block 1); BLEU width 10, so blocks of 11.
  // Segment 0 (fr) "a b" / "a c": hyp_len 2, ref_len 2, matches 1/0/0/0, totals 2/1/0/0.
  // Segment 1 (de) "a b c d" / itself: 4, 4, matches 4/3/2/1, totals 4/3/2/1.
  const LanguageGroups groups = GroupByLanguage({"fr", "de"});
  EXPECT_EQ(groups.languages, (std::vector<std::string>{"de", "fr"}));
  const SegmentStats stats =
      BleuSegmentStatsByLanguage({"a b", "a b c d"}, {{"a c", "a b c d"}}, groups, BleuOptions());
  EXPECT_EQ(stats.width, 22);
  const std::vector<int64_t> zeros(11, 0);
  const std::vector<int64_t> fr = {1, 2, 2, 1, 0, 0, 0, 2, 1, 0, 0};
  const std::vector<int64_t> de = {1, 4, 4, 4, 3, 2, 1, 4, 3, 2, 1};
  EXPECT_EQ(std::vector<int64_t>(stats.Row(0), stats.Row(0) + 11), zeros);
  EXPECT_EQ(std::vector<int64_t>(stats.Row(0) + 11, stats.Row(0) + 22), fr);
  EXPECT_EQ(std::vector<int64_t>(stats.Row(1), stats.Row(1) + 11), de);
  EXPECT_EQ(std::vector<int64_t>(stats.Row(1) + 11, stats.Row(1) + 22), zeros);
}

TEST(StatisticsByLanguage, MeanSkipsLanguagesAResampleMisses) {
  // de block: one perfect 4-token segment (BLEU 100); fr block: no segment (count 0). The mean
  // is over the languages present: 100, not (100 + 0) / 2.
  std::vector<int64_t> summed = {1, 4, 4, 4, 3, 2, 1, 4, 3, 2, 1};
  summed.resize(22, 0);
  EXPECT_NEAR(MeanBleuOverLanguages(2, BleuOptions())(summed), 100.0, kTight);
  // Both present, fr with "a b" / "a c" (0: no 3-gram) : (100 + 0) / 2.
  const std::vector<int64_t> fr = {1, 2, 2, 1, 0, 0, 0, 2, 1, 0, 0};
  std::copy(fr.begin(), fr.end(), summed.begin() + 11);
  EXPECT_NEAR(MeanBleuOverLanguages(2, BleuOptions())(summed), 50.0, kTight);
  EXPECT_THROW(MeanBleuOverLanguages(3, BleuOptions())(summed), std::runtime_error);
}

TEST(StatisticsByLanguage, BootstrapScoresTheMeanWithEachLanguagesTokenizer) {
  // The corpus of ScoreByLanguage.EachLanguageUsesItsOwnTokenizer: (100 + ja + zh) / 3 for the
  // baseline; the second system equals the references: 100 in every language.
  const double ja = 100 * std::pow(8.0 / 11 * 5.0 / 10 * 3.0 / 9 * 2.0 / 8, 0.25);
  const double zh = std::exp(-0.6) * std::pow(100.0 * 75 * 200 / 3 * 50, 0.25);
  const std::vector<std::string> refs = {"吾輩は猫である。名前はまだ無い。",
                                         "the cat sat on the mat", "我爱北京天安门。"};
  const std::vector<std::string> hyps = {"吾輩は犬である。名前はもう有る。",
                                         "the cat sat on the mat", "我爱北京。"};
  PairedBootstrapOptions opt;
  opt.num_samples = 100;
  opt.p_value = BootstrapPValue::kOneSided;
  const PairedBootstrapResult r =
      PairedBootstrapBleuByLanguage({hyps, refs}, {refs}, {"ja", "de", "zh_CN"}, {}, opt);
  EXPECT_NEAR(r.systems[0].score, (100.0 + ja + zh) / 3, kTight);
  EXPECT_NEAR(r.systems[1].score, 100.0, kTight);
  // Identical systems: one-sided p = (n + 1) / (n + 1) = 1.
  const PairedBootstrapResult same =
      PairedBootstrapBleuByLanguage({hyps, hyps}, {refs}, {"ja", "de", "zh_CN"}, {}, opt);
  EXPECT_EQ(*same.systems[1].p_value, 1.0);
  EXPECT_THROW(PairedBootstrapBleuByLanguage({hyps, hyps}, {refs}, {"ja", "de"}, {}, opt),
               std::runtime_error);
}

TEST(StatisticsByLanguage, BootstrapOfTheHeadlineIsStratifiedByLanguage) {
  // Two German and two French sentences, interleaved. The system is the reference in German
  // (BLEU 100 on any sample of those sentences: each has 4-grams) and shares no word with it in
  // French (BLEU 0). Its headline, the mean over the two languages, is 50; resampled within
  // each language, every resample holds 2 German and 2 French sentences and scores 50: mean 50,
  // interval half-width 0. The baseline (the references) is 100 everywhere.
  const std::vector<std::string> refs = {
      "der hund lief heute durch den park", "le chien a couru dans le parc",
      "die katze sass auf der matte", "le chat est assis sur le tapis"};
  const std::vector<std::string> langs = {"de", "fr", "de", "fr"};
  const std::vector<std::string> system = {refs[0], "qq zz ww", refs[2], "qq zz ww"};
  PairedBootstrapOptions opt;
  opt.num_samples = 1000;
  const PairedBootstrapResult r =
      PairedBootstrapBleuByLanguage({refs, system}, {refs}, langs, {}, opt);
  EXPECT_NEAR(r.systems[1].score, 50.0, kTight);
  EXPECT_NEAR(r.systems[1].mean, 50.0, kTight);
  EXPECT_EQ(r.systems[1].ci, 0.0);
  EXPECT_NEAR(r.systems[0].mean, 100.0, kTight);
  EXPECT_EQ(r.systems[0].ci, 0.0);
  // chrF likewise: 100 in German, 0 in French, 50 in every resample.
  const PairedBootstrapResult c =
      PairedBootstrapChrfByLanguage({refs, system}, {refs}, langs, {}, opt);
  EXPECT_NEAR(c.systems[1].mean, 50.0, kTight);
  EXPECT_EQ(c.systems[1].ci, 0.0);

  // Resampling the four sentences together (what the bootstrap did before): a resample is all
  // German with probability (1/2)^4 = 1/16 (headline 100, the mean over the languages present)
  // and all French with 1/16 (headline 0), about 62 of 1000 each, so the 2.5% and 97.5% points
  // (sorted[25], sorted[974]) are 0 and 100: half-width 50.
  const LanguageGroups groups = GroupByLanguage(langs);
  const std::vector<SegmentStats> stats = {
      BleuSegmentStatsByLanguage(refs, {refs}, groups, BleuOptions()),
      BleuSegmentStatsByLanguage(system, {refs}, groups, BleuOptions())};
  const PairedBootstrapResult unstratified =
      PairedBootstrap(stats, MeanBleuOverLanguages(2, BleuOptions()), opt);
  EXPECT_NEAR(unstratified.systems[1].ci, 50.0, kTight);
  // The same statistics with the language strata give the stratified result.
  const PairedBootstrapResult same = PairedBootstrap(stats, MeanBleuOverLanguages(2, BleuOptions()),
                                                     StratifiedByLanguage(opt, groups));
  EXPECT_EQ(same.systems[1].mean, r.systems[1].mean);
  EXPECT_EQ(same.systems[1].ci, 0.0);
}

TEST(StatisticsByLanguage, ChrfBootstrapScoresTheMean) {
  // de "abc" / "abc": 100; fr "xy" / "pq": 0. Mean 50.
  PairedBootstrapOptions opt;
  opt.num_samples = 10;
  const PairedBootstrapResult r = PairedBootstrapChrfByLanguage(
      {{"abc", "xy"}, {"abc", "pq"}}, {{"abc", "pq"}}, {"de", "fr"}, {}, opt);
  EXPECT_NEAR(r.systems[0].score, 50.0, kTight);
  EXPECT_NEAR(r.systems[1].score, 100.0, kTight);  // the second system is the references
}

}  // namespace
}  // namespace moebench
