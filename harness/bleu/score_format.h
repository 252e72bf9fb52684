// Score lines as sacreBLEU's Score.format() prints them:
//   text  "BLEU|nrefs:1|...|version:2.3.1 = 34.6 67.8/40.1/25.0/16.7 (BP = 1.000 ...)"
//         (without a signature: "BLEU = 34.56 ...")
//   json  {"name", "score", "signature", "verbose_score", then one key per signature field},
//         indented by one space like json.dumps(d, indent=1, ensure_ascii=False).
#pragma once

#include <string>
#include <vector>

namespace moebench {

struct ScoreReport {
  std::string name;  // "BLEU", "chrF2", "chrF2++"
  double score = 0;
  std::string verbose;    // BLEU's precisions/BP part; empty for chrF
  std::string signature;  // may be empty
};

// printf("%.*f"), which rounds like Python's f"{x:.{width}f}" (both round the exact binary value
// half to even).
std::string FormatFixed(double value, int decimals);

// `width` is the number of decimals of the score. With `score_only` just the number.
std::string FormatScoreText(const ScoreReport& report, int width, bool score_only = false);
// `indent` as in json.dumps: 1 gives sacreBLEU's layout, a negative value one compact line.
std::string FormatScoreJson(const ScoreReport& report, int width, int indent = 1);

// sacreBLEU's --short signature: keys abbreviated (nrefs -> #, case -> c, eff -> e,
// smooth -> s, space -> s, seed -> rs, version -> v, ...).
std::string ShortenSignature(const std::string& signature);

// Columns of text as wide as they look: UTF-8 code points, not bytes.
size_t DisplayWidth(const std::string& text);

// A plain table: the first column right-aligned, the others centred (sacreBLEU's tabulate
// alignment, without the box drawing); one line per row, trailing spaces trimmed.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace moebench
