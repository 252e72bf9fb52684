#include "harness/sweep/manifest_values.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "harness/spec/run_spec_check.h"

namespace moebench {

std::string TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "a list";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    default:
      return "nothing";
  }
}

bool TomlToField(const toml::node& node, const nlohmann::json& default_value, nlohmann::json* out,
                 std::string* why) {
  if (default_value.is_string()) {
    if (const auto* s = node.as_string()) {
      *out = s->get();
      return true;
    }
    *why = "expected a string, got " + TypeName(node);
    return false;
  }
  if (default_value.is_number_integer()) {
    if (const auto* i = node.as_integer()) {
      *out = i->get();
      return true;
    }
    *why = "expected an integer, got " + TypeName(node);
    return false;
  }
  if (default_value.is_number_float()) {
    if (const auto* f = node.as_floating_point()) {
      *out = f->get();
      return true;
    }
    if (const auto* i = node.as_integer()) {
      *out = static_cast<double>(i->get());
      return true;
    }
    *why = "expected a number, got " + TypeName(node);
    return false;
  }
  if (default_value.is_array()) {
    // A list field: of strings (langs) or of integers (eval_k); its default may be empty, so
    // the kind comes from the value, one kind per list (RunSpec::FromJson checks the rest).
    const auto* arr = node.as_array();
    if (arr == nullptr) {
      *why = "expected a list, got " + TypeName(node);
      return false;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const toml::node& n : *arr) {
      if (const auto* s = n.as_string()) {
        list.push_back(s->get());
      } else if (const auto* i = n.as_integer()) {
        list.push_back(i->get());
      } else {
        *why = "expected a list of strings or integers, found " + TypeName(n) + " in it";
        return false;
      }
      if (list.size() > 1 && list.back().is_string() != list.front().is_string()) {
        *why = "a list mixes strings and integers";
        return false;
      }
    }
    if (!default_value.empty() && !list.empty() &&
        default_value.front().is_string() != list.front().is_string()) {
      *why = std::string("expected a list of ") +
             (default_value.front().is_string() ? "strings" : "integers");
      return false;
    }
    *out = list;
    return true;
  }
  *why = "this field cannot be set from a manifest";
  return false;
}

bool ValidateField(const std::string& field, const nlohmann::json& value, std::string* why) {
  return CheckSpecField(field, value, why);  // the run spec's own rule (run_spec_check.h)
}

std::string FormatKnobNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; precision++) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

bool TomlToKnob(const toml::node& node, const std::string& default_value, std::string* out,
                std::string* why) {
  if (default_value == "true" || default_value == "false") {
    if (const auto* b = node.as_boolean()) {
      *out = b->get() ? "true" : "false";
      return true;
    }
    *why = "expected true or false, got " + TypeName(node);
    return false;
  }
  char* end = nullptr;
  std::strtoll(default_value.c_str(), &end, 10);
  const bool int_default = !default_value.empty() && *end == '\0';
  std::strtod(default_value.c_str(), &end);
  const bool number_default = !default_value.empty() && *end == '\0';
  if (number_default) {
    double value = 0;
    if (const auto* f = node.as_floating_point()) {
      value = f->get();
    } else if (const auto* i = node.as_integer()) {
      value = static_cast<double>(i->get());
    } else {
      *why = "expected a number, got " + TypeName(node);
      return false;
    }
    // An integer default ("4", or "-1" standing for "automatic") keeps integral values as
    // integers, so `min_capacity = 4.0` still reads as an integer and writing the default
    // explicitly gives the default's spelling; other values take the decimal spelling.
    const bool integral = std::floor(value) == value && std::fabs(value) < 9.0e15;
    if (int_default && integral) {
      *out = std::to_string(static_cast<int64_t>(value));
    } else {
      *out = FormatKnobNumber(value);
    }
    return true;
  }
  if (const auto* s = node.as_string()) {
    *out = s->get();
    return true;
  }
  *why = "expected a string, got " + TypeName(node);
  return false;
}

}  // namespace moebench
