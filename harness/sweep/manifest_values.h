// Converting manifest (TOML) values into run-spec fields and method knobs, with the type and
// range checks a manifest error reports. Private to harness/sweep.
#pragma once

#include <string>

#include <toml++/toml.h>
#include <nlohmann/json.hpp>

namespace moebench {

// "string", "integer", "float", "boolean", "array", "table", "date", ...
std::string TypeName(const toml::node& node);

// Converts `node` to the JSON type of `default_value` (the run-spec field's default): string,
// integer, float (an integer is accepted), or list of strings. False with `why` on a mismatch.
bool TomlToField(const toml::node& node, const nlohmann::json& default_value, nlohmann::json* out,
                 std::string* why);

// Range checks of one run-spec field (dataset and exchange names, positive counts, ...).
bool ValidateField(const std::string& field, const nlohmann::json& value, std::string* why);

// Converts a knob value to the string the method reads, typed by the knob's default: "true" /
// "false" needs a boolean; a numeric default a number (integral values of an integer-spelled
// default written as integers, others as FormatKnobNumber does); anything else a string.
bool TomlToKnob(const toml::node& node, const std::string& default_value, std::string* out,
                std::string* why);

// The shortest text that reads back as `value`, with ".0" on integral values ("2.0", "0.01",
// "1e-05"): the spelling the knob defaults use, so writing a default explicitly gives the same
// run id as leaving it out.
std::string FormatKnobNumber(double value);

}  // namespace moebench
