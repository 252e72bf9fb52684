// `--where` and `--sort` for `moebench runs` and `moebench export`: a small MLflow-like
// filter language compiled to parameterised SQL over the `runs` table. User text never
// reaches the SQL: identifiers map to fixed column expressions, literals become parameters.
//
//   expr       := or ;  or := and (OR and)* ;  and := not (AND not)* ;  not := NOT not | atom
//   atom       := '(' expr ')' | key op literal | key [NOT] LIKE 'text' | key [NOT] ILIKE 'text'
//               | key [NOT] IN (literal, ...) | key IS [NOT] NULL
//   op         := = | == | != | <> | < | <= | > | >=
//   key        := method | size | seed | status | id | sweep | host | error | started_at
//               | ended_at | params_total | params_active | threads | exit_code
//               | params.<spec field or knob> | metrics.<key>   (a `quoted` part allows
//                 any character: metrics.`odd-key`)
//   literal    := 'text' | "text" (a doubled quote inside) | number
//
// A number literal compares numerically: a text value that is a number (knobs are stored as
// text, e.g. "0.3") is read as one, and a value that is not a number never matches. A text
// literal compares the value's text. metrics.<key> is the latest value of that metric.
// params.<name> must be a run-spec field or a knob of some registered method (else an error, not
// an empty match). Keywords are case-insensitive. LIKE matches case-sensitively, as MLflow's
// (% any run of characters, _ one character); ILIKE ignores the case of ASCII letters. A run
// without the value matches neither LIKE nor NOT LIKE. Parentheses and NOT nest at most 32
// deep, and a filter has at most 256 comparisons (an IN list counts each value): beyond, an
// error names the position.
#pragma once

#include <string>
#include <vector>

#include "harness/store/store.h"

namespace moebench {

struct SqlFragment {
  std::string sql;                      // with anonymous '?' placeholders
  std::vector<Store::SqlParam> params;  // in the order of the placeholders
};

// Whether some registered method has a knob with this name.
bool IsKnownKnob(const std::string& name);

// A boolean SQL expression over `runs`; throws std::invalid_argument naming the position and
// what was expected.
SqlFragment ParseRunFilter(const std::string& where);

// "KEY [asc|desc], ..." -> an ORDER BY list (runs without the value sort last).
SqlFragment ParseRunSort(const std::string& sort);

// The ids of the runs that pass every given filter ("" = no filter), in `sort` order, then
// insertion order. `sweep_id` is an exact sweep id.
std::vector<std::string> SelectRunIds(const Store& store, const std::string& sweep_id,
                                      const std::string& status, const std::string& where,
                                      const std::string& sort);

}  // namespace moebench
