#include "harness/cli/table_output.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "harness/cli/cli_common.h"

namespace moebench {
namespace {

std::string CsvEscape(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string MdEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

// Every digit that reads back as the same double, as JSON writes it; a whole number without
// the ".0" (20, not 20.0).
std::string FullNumber(double v) {
  constexpr double kExactIntegers = 9007199254740992.0;  // 2^53
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < kExactIntegers) {
    return std::to_string(static_cast<int64_t>(v));
  }
  return nlohmann::json(v).dump();
}

std::string Shown(const Cell& c, bool rounded) {
  switch (c.kind) {
    case Cell::Kind::kText:
      return c.text;
    case Cell::Kind::kNumber:
      if (!c.text.empty()) return c.text;  // an integer, as given
      return rounded ? FormatNumber(c.number) : FullNumber(c.number);
    case Cell::Kind::kNull:
      return "";
  }
  return "";
}

}  // namespace

Cell Cell::Text(const std::string& text) {
  Cell c;
  c.kind = Kind::kText;
  c.text = text;
  return c;
}

Cell Cell::Number(double value) {
  if (std::isnan(value)) return Null();
  Cell c;
  c.kind = Kind::kNumber;
  c.number = value;
  return c;
}

Cell Cell::Number(std::optional<double> value) { return value ? Number(*value) : Null(); }

Cell Cell::Integer(int64_t value) {
  Cell c;
  c.kind = Kind::kNumber;
  c.number = static_cast<double>(value);
  c.text = std::to_string(value);
  return c;
}

Cell Cell::Null() { return Cell(); }

void CheckTableFormat(const std::string& format) {
  if (format != "table" && format != "csv" && format != "json" && format != "md") {
    throw std::invalid_argument("--format: expected table, csv, json or md, got '" + format + "'");
  }
}

void PrintTable(const std::vector<std::string>& columns, const std::vector<std::vector<Cell>>& rows,
                const std::string& format, std::ostream& out) {
  CheckTableFormat(format);
  if (format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json o = nlohmann::json::object();
      for (size_t i = 0; i < columns.size() && i < r.size(); ++i) {
        const Cell& c = r[i];
        if (c.kind == Cell::Kind::kText) {
          o[columns[i]] = c.text;
        } else if (c.kind == Cell::Kind::kNumber) {
          if (!c.text.empty()) {
            o[columns[i]] = static_cast<int64_t>(c.number);
          } else {
            o[columns[i]] = c.number;
          }
        } else {
          o[columns[i]] = nullptr;
        }
      }
      arr.push_back(o);
    }
    out << arr.dump(2) << "\n";
    return;
  }
  if (format == "csv") {
    for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << CsvEscape(columns[i]);
    out << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) out << (i ? "," : "") << CsvEscape(Shown(r[i], false));
      out << "\n";
    }
    return;
  }
  if (format == "md") {
    out << "|";
    for (const std::string& c : columns) out << " " << MdEscape(c) << " |";
    out << "\n|";
    for (size_t i = 0; i < columns.size(); ++i) out << "---|";
    out << "\n";
    for (const auto& r : rows) {
      out << "|";
      for (const Cell& c : r) out << " " << MdEscape(Shown(c, true)) << " |";
      out << "\n";
    }
    return;
  }
  std::vector<size_t> width(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) width[i] = columns[i].size();
  std::vector<std::vector<std::string>> shown;
  for (const auto& r : rows) {
    shown.emplace_back();
    for (size_t i = 0; i < r.size(); ++i) {
      shown.back().push_back(Shown(r[i], true));
      if (i < width.size()) width[i] = std::max(width[i], shown.back().back().size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size() && i < width.size()) {
        s += std::string(width[i] - cells[i].size() + 2, ' ');
      }
    }
    out << s << "\n";
  };
  line(columns);
  for (const auto& r : shown) line(r);
}

}  // namespace moebench
