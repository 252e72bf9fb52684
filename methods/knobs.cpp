#include "methods/knobs.h"

#include <cstdlib>
#include <stdexcept>

namespace moebench {

Knobs::Knobs(const std::string& method, const std::vector<KnobSpec>& specs,
             const std::map<std::string, std::string>& overrides)
    : method_(method) {
  for (const auto& spec : specs) values_[spec.name] = spec.default_value;
  for (const auto& [name, value] : overrides) {
    if (values_.count(name) == 0) {
      std::string known;
      for (const auto& spec : specs) known += (known.empty() ? "" : ", ") + spec.name;
      throw std::invalid_argument("unknown knob '" + name + "' for method " + method +
                                  " (known: " + (known.empty() ? "none" : known) + ")");
    }
    values_[name] = value;
  }
  // Type-check every value once, so a bad override fails before training starts.
  for (const auto& spec : specs) {
    const std::string& d = spec.default_value;
    char* end = nullptr;
    std::strtod(d.c_str(), &end);
    const bool numeric_default = !d.empty() && end && *end == '\0';
    if (numeric_default) GetDouble(spec.name);
    if (d == "true" || d == "false") GetBool(spec.name);
  }
}

const std::string& Knobs::GetString(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    throw std::logic_error("method " + method_ + " has no knob '" + name + "'");
  }
  return it->second;
}

double Knobs::GetDouble(const std::string& name) const {
  const std::string& v = GetString(name);
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0') {
    throw std::invalid_argument("knob " + method_ + "." + name + ": expected a number, got '" + v +
                                "'");
  }
  return d;
}

int64_t Knobs::GetInt(const std::string& name) const {
  const std::string& v = GetString(name);
  char* end = nullptr;
  long long i = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0') {
    throw std::invalid_argument("knob " + method_ + "." + name + ": expected an integer, got '" +
                                v + "'");
  }
  return i;
}

bool Knobs::GetBool(const std::string& name) const {
  const std::string& v = GetString(name);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  throw std::invalid_argument("knob " + method_ + "." + name + ": expected true or false, got '" +
                              v + "'");
}

}  // namespace moebench
