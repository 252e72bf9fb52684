// Output of the query verbs (runs --group-by, diff, best, show --layers/--curve, export):
// one table of typed cells, printed as an aligned text table, CSV, JSON (numbers as numbers,
// missing values as null) or Markdown.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace moebench {

struct Cell {
  enum class Kind { kText, kNumber, kNull };
  Kind kind = Kind::kNull;
  std::string text;
  double number = 0;

  static Cell Text(const std::string& text);
  static Cell Number(double value);  // NaN -> null
  static Cell Number(std::optional<double> value);
  static Cell Integer(int64_t value);
  static Cell Null();
};

constexpr const char* kTableFormats = "table | csv | json | md";

// Throws std::invalid_argument unless format is table, csv, json or md.
void CheckTableFormat(const std::string& format);

// table and md round numbers to 4 significant digits (FormatNumber); csv and json keep every
// digit. Null cells are empty in table, csv and md.
void PrintTable(const std::vector<std::string>& columns, const std::vector<std::vector<Cell>>& rows,
                const std::string& format, std::ostream& out);

}  // namespace moebench
