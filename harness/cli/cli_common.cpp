#include "harness/cli/cli_common.h"

#include "harness/cli/table_output.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace moebench {

void AddDbOption(CLI::App& cmd, std::string& db) {
  cmd.add_option("--db", db, "results database (SQLite)")->capture_default_str();
}

namespace {
std::string CsvEscape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}
}  // namespace

void PrintRows(const std::vector<std::string>& columns,
               const std::vector<std::vector<std::string>>& rows, const std::string& format) {
  if (format == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json o = nlohmann::json::object();
      for (size_t i = 0; i < columns.size() && i < r.size(); ++i) o[columns[i]] = r[i];
      arr.push_back(o);
    }
    std::cout << arr.dump(2) << "\n";
    return;
  }
  if (format == "csv") {
    for (size_t i = 0; i < columns.size(); ++i)
      std::cout << (i ? "," : "") << CsvEscape(columns[i]);
    std::cout << "\n";
    for (const auto& r : rows) {
      for (size_t i = 0; i < r.size(); ++i) std::cout << (i ? "," : "") << CsvEscape(r[i]);
      std::cout << "\n";
    }
    return;
  }
  if (format == "md") {
    std::vector<std::vector<Cell>> cells;
    for (const auto& r : rows) {
      cells.emplace_back();
      for (const std::string& c : r) cells.back().push_back(Cell::Text(c));
    }
    PrintTable(columns, cells, "md", std::cout);
    return;
  }
  if (format != "table") {
    throw std::invalid_argument("--format: expected table, csv, json or md, got '" + format + "'");
  }
  std::vector<size_t> width(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) width[i] = columns[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size()) s += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << s << "\n";
  };
  line(columns);
  for (const auto& r : rows) line(r);
}

std::map<std::string, std::string> ParseAssignments(const std::vector<std::string>& items,
                                                    const std::string& what) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw std::invalid_argument(what + ": expected key=value, got '" + item + "'");
    }
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  if (v != 0 && (std::fabs(v) >= 1e6 || std::fabs(v) < 1e-3)) {
    std::snprintf(buf, sizeof(buf), "%.3e", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.4g", v);
  }
  return buf;
}

}  // namespace moebench

namespace moebench {

namespace {
std::vector<std::string>& ArgsStorage() {
  static std::vector<std::string> args;
  return args;
}
}  // namespace

const std::vector<std::string>& ProgramArgs() { return ArgsStorage(); }

void SetProgramArgs(int argc, char** argv) { ArgsStorage().assign(argv, argv + argc); }

}  // namespace moebench
