#include "harness/bleu/score_format.h"

#include <algorithm>
#include <iomanip>
#include <locale>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "harness/bleu/signature.h"

namespace moebench {

std::string FormatFixed(double value, int decimals) {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  out << std::fixed << std::setprecision(decimals) << value;
  return out.str();
}

std::string FormatScoreText(const ScoreReport& report, int width, bool score_only) {
  const std::string score = FormatFixed(report.score, width);
  if (score_only) return score;
  std::string line = report.signature.empty() ? report.name : report.name + "|" + report.signature;
  line += " = " + score;
  if (!report.verbose.empty()) line += " " + report.verbose;
  return line;
}

std::string FormatScoreJson(const ScoreReport& report, int width, int indent) {
  nlohmann::ordered_json d;
  d["name"] = report.name;
  // sacreBLEU stores float(f'{score:.{width}f}'): the rounded value, printed as shortest repr.
  std::istringstream rounded(FormatFixed(report.score, width));
  rounded.imbue(std::locale::classic());
  double score = 0;
  rounded >> score;
  d["score"] = score;
  d["signature"] = report.signature;
  if (!report.verbose.empty()) d["verbose_score"] = report.verbose;
  if (!report.signature.empty()) {
    for (const auto& field : ParseSignature(report.signature)) d[field.first] = field.second;
  }
  return d.dump(indent);
}

std::string ShortenSignature(const std::string& signature) {
  static const std::pair<const char*, const char*> kAbbreviations[] = {
      {"version", "v"}, {"nrefs", "#"},    {"test", "t"}, {"lang", "l"},
      {"subset", "S"},  {"origlang", "o"}, {"bs", "bs"},  {"ar", "ar"},
      {"seed", "rs"},   {"case", "c"},     {"eff", "e"},  {"tok", "tok"},
      {"smooth", "s"},  {"nc", "nc"},      {"nw", "nw"},  {"space", "s"}};
  std::string out;
  for (const auto& field : ParseSignature(signature)) {
    std::string key = field.first;
    for (const auto& abbreviation : kAbbreviations) {
      if (key == abbreviation.first) key = abbreviation.second;
    }
    out += (out.empty() ? "" : "|") + key + ":" + field.second;
  }
  return out;
}

size_t DisplayWidth(const std::string& text) {
  size_t width = 0;
  for (char c : text) width += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return width;
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], DisplayWidth(row[c]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const size_t pad = widths[c] - DisplayWidth(row[c]);
      if (c == 0) {
        line += std::string(pad, ' ') + row[c];
      } else {
        line += "  " + std::string(pad / 2, ' ') + row[c] + std::string(pad - pad / 2, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace moebench
