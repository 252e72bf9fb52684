// Runs grouped into configurations and their metrics aggregated over seeds: what
// `moebench runs --group-by`, `moebench best --group-by` and `moebench diff` read. The
// statistics are Note [Interval over seeds] (harness/util/stats.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/util/stats.h"

namespace moebench {

// A run's spec as flat text values: every run-spec field (defaults filled in for fields the
// spec leaves out), lists joined with ',', and each knob as "knobs.<name>".
std::map<std::string, std::string> FlatSpec(const RunRow& run);

// The special group key "config": runs whose specs differ only in the seed (and the sweep tag).
constexpr const char* kGroupByConfig = "config";

// "KEY,KEY,..." -> the normalised keys: columns (method, size, status, sweep, ...),
// params.<field>, params.<knob> or params.knobs.<knob> (both become "knobs.<knob>"), or
// "config". Throws std::invalid_argument naming an unknown key (a knob that no registered
// method has, a metrics.* key, an empty entry).
std::vector<std::string> ParseGroupKeys(const std::string& text);

struct RunGroup {
  std::map<std::string, std::string> values;  // the grouping key -> its value in this group
  std::vector<RunRow> runs;                   // every selected run of the group, in order
  std::vector<RunRow> finished;               // the finished ones: their metrics are aggregated
  std::vector<int64_t> seeds;                 // seeds of the finished runs, ascending
  // Seeds that the selection has but this group has no finished run for, with why: "3" (no
  // run), "2 (failed)", "4 (running)".
  std::vector<std::string> missing;
  std::map<std::string, Summary> metrics;  // metric key -> its summary over `finished`
};

// Groups `runs` (in their order; groups in order of first appearance) by `keys` (from
// ParseGroupKeys) and summarises `metric_keys` (latest values) over each group's finished runs.
// With "config", `values` holds method, size, every run-spec field that varies between the
// runs and every knob that varies between runs of the group's method.
std::vector<RunGroup> GroupRuns(const Store& store, const std::vector<RunRow>& runs,
                                const std::vector<std::string>& keys,
                                const std::vector<std::string>& metric_keys);

}  // namespace moebench
