#include "harness/sweep/run_groups.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "harness/sweep/run_filter.h"
#include "harness/spec/run_spec.h"

namespace moebench {
namespace {

std::string JsonText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string joined;
    for (const auto& e : v) joined += (joined.empty() ? "" : ",") + JsonText(e);
    return joined;
  }
  if (v.is_null()) return "";
  return v.dump();
}

// The run columns a group key may name, and their value in a run.
std::optional<std::string> ColumnValue(const RunRow& r, const std::string& key) {
  if (key == "method") return r.method;
  if (key == "size") return r.size;
  if (key == "seed") return std::to_string(r.seed);
  if (key == "status") return std::string(RunStatusName(r.status));
  if (key == "sweep" || key == "sweep_id") return r.sweep_id;
  if (key == "host") return r.host;
  if (key == "params_total") return std::to_string(r.params_total);
  if (key == "params_active") return std::to_string(r.params_active);
  return std::nullopt;
}

std::string ValueOf(const RunRow& r, const std::map<std::string, std::string>& flat,
                    const std::string& key) {
  if (auto column = ColumnValue(r, key)) return *column;
  auto it = flat.find(key);
  return it == flat.end() ? std::string() : it->second;
}

// The spec without what does not make a configuration (seed, sweep).
std::map<std::string, std::string> ConfigOf(const std::map<std::string, std::string>& flat) {
  std::map<std::string, std::string> config = flat;
  config.erase("seed");
  config.erase("sweep");
  return config;
}

}  // namespace

std::map<std::string, std::string> FlatSpec(const RunRow& run) {
  nlohmann::json spec = nlohmann::json::parse(run.spec_json, nullptr, false);
  if (spec.is_discarded() || !spec.is_object()) spec = nlohmann::json::object();
  std::map<std::string, std::string> flat;
  const nlohmann::json defaults = RunSpec::FieldDefaults();
  for (const auto& [key, value] : defaults.items()) {
    if (key == "knobs") continue;
    flat[key] = JsonText(spec.contains(key) ? spec[key] : value);
  }
  for (const auto& [key, value] : spec.items()) {
    if (key == "knobs") continue;
    flat[key] = JsonText(value);
  }
  if (spec.contains("knobs") && spec["knobs"].is_object()) {
    for (const auto& [name, value] : spec["knobs"].items()) flat["knobs." + name] = JsonText(value);
  }
  flat["method"] = run.method;
  flat["size"] = run.size;
  flat["seed"] = std::to_string(run.seed);
  return flat;
}

std::vector<std::string> ParseGroupKeys(const std::string& text) {
  std::vector<std::string> keys;
  const nlohmann::json fields = RunSpec::FieldDefaults();
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string key = text.substr(start, comma - start);
    key.erase(0, key.find_first_not_of(" \t"));
    key.erase(key.find_last_not_of(" \t") + 1);
    start = comma + 1;
    if (key.empty()) {
      throw std::invalid_argument("--group-by: an empty key in '" + text +
                                  "' (expected KEY,KEY,...)");
    }
    std::string normal;
    if (key == kGroupByConfig) {
      normal = key;
    } else if (ColumnValue(RunRow(), key)) {
      normal = key == "sweep_id" ? "sweep" : key;
    } else if (key.rfind("metrics.", 0) == 0) {
      throw std::invalid_argument("--group-by: '" + key +
                                  "' is a metric; group by columns or params.<name>, and "
                                  "aggregate metrics with --metrics");
    } else if (key.rfind("params.", 0) == 0) {
      std::string name = key.substr(7);
      if (name.rfind("knobs.", 0) == 0) name = name.substr(6);
      if (key.rfind("params.knobs.", 0) != 0 && fields.contains(name) && name != "knobs") {
        normal = name;
      } else if (IsKnownKnob(name)) {
        normal = "knobs." + name;
      } else {
        throw std::invalid_argument("--group-by: unknown key '" + key +
                                    "': not a run-spec field nor a knob of any method "
                                    "(moebench methods lists the knobs)");
      }
    } else {
      throw std::invalid_argument(
          "--group-by: unknown key '" + key +
          "' (expected config, method, size, seed, status, sweep, host, params_total, "
          "params_active or params.<field or knob>)");
    }
    if (std::find(keys.begin(), keys.end(), normal) == keys.end()) keys.push_back(normal);
    if (comma == text.size()) break;
  }
  return keys;
}

std::vector<RunGroup> GroupRuns(const Store& store, const std::vector<RunRow>& runs,
                                const std::vector<std::string>& keys,
                                const std::vector<std::string>& metric_keys) {
  const bool by_config = std::find(keys.begin(), keys.end(), kGroupByConfig) != keys.end();
  std::vector<std::map<std::string, std::string>> flats;
  for (const RunRow& r : runs) flats.push_back(FlatSpec(r));

  // The keys that tell configurations apart, when grouping by config: run-spec fields that vary
  // over all the runs, and knobs that vary between runs of the same method (each method has
  // its own knobs; as the report's labels, reports/summary.py group_configs).
  std::set<std::string> varying = {"method", "size"};
  std::map<std::string, std::set<std::string>> varying_knobs;  // method -> knobs.<name>
  if (by_config) {
    std::map<std::string, std::set<std::string>> seen;
    std::map<std::string, std::map<std::string, std::set<std::string>>> seen_knobs;
    const std::string unset = "\x01(unset)";
    std::set<std::string> all_keys;
    for (const auto& flat : flats) {
      for (const auto& [k, v] : ConfigOf(flat)) all_keys.insert(k);
    }
    for (size_t i = 0; i < flats.size(); i++) {
      const auto config = ConfigOf(flats[i]);
      for (const std::string& k : all_keys) {
        auto it = config.find(k);
        const std::string& v = it == config.end() ? unset : it->second;
        if (k.rfind("knobs.", 0) == 0) {
          seen_knobs[runs[i].method][k].insert(v);
        } else {
          seen[k].insert(v);
        }
      }
    }
    for (const auto& [k, values] : seen) {
      if (values.size() > 1) varying.insert(k);
    }
    for (const auto& [method, knobs] : seen_knobs) {
      for (const auto& [k, values] : knobs) {
        if (values.size() > 1) varying_knobs[method].insert(k);
      }
    }
  }

  std::vector<RunGroup> groups;
  std::map<std::string, size_t> index;
  std::set<int64_t> all_seeds;
  for (size_t i = 0; i < runs.size(); i++) {
    const RunRow& r = runs[i];
    all_seeds.insert(r.seed);
    std::map<std::string, std::string> values;
    std::string group_key;
    for (const std::string& key : keys) {
      if (key == kGroupByConfig) {
        const auto config = ConfigOf(flats[i]);
        group_key += nlohmann::json(config).dump() + "\x1f";
        std::set<std::string> shown = varying;
        shown.insert(varying_knobs[r.method].begin(), varying_knobs[r.method].end());
        for (const std::string& k : shown) {
          auto it = config.find(k);
          values[k] = it == config.end() ? std::string() : it->second;
        }
        continue;
      }
      values[key] = ValueOf(r, flats[i], key);
      group_key += key + "=" + values[key] + "\x1f";
    }
    auto [it, inserted] = index.emplace(group_key, groups.size());
    if (inserted) {
      groups.emplace_back();
      groups.back().values = values;
    }
    groups[it->second].runs.push_back(r);
  }

  for (RunGroup& g : groups) {
    std::map<int64_t, std::string> not_finished;
    std::set<int64_t> have;
    for (const RunRow& r : g.runs) {
      if (r.status == RunStatus::kFinished) {
        g.finished.push_back(r);
        g.seeds.push_back(r.seed);
        have.insert(r.seed);
      } else {
        not_finished.emplace(r.seed, RunStatusName(r.status));
      }
    }
    std::sort(g.seeds.begin(), g.seeds.end());
    for (int64_t seed : all_seeds) {
      if (have.count(seed)) continue;
      auto it = not_finished.find(seed);
      g.missing.push_back(std::to_string(seed) +
                          (it == not_finished.end() ? std::string() : " (" + it->second + ")"));
    }
    std::map<std::string, std::vector<double>> values;
    for (const RunRow& r : g.finished) {
      const auto latest = store.LatestMetrics(r.id);
      for (const std::string& key : metric_keys) {
        auto it = latest.find(key);
        if (it != latest.end()) values[key].push_back(it->second.value);
      }
    }
    for (const std::string& key : metric_keys) g.metrics[key] = Summarize(values[key]);
  }
  return groups;
}

}  // namespace moebench
