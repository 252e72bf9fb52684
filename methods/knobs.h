// A method's knobs: typed values resolved from defaults and user overrides (`--set k=v`).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace moebench {

struct KnobSpec {
  std::string name;
  std::string default_value;
  std::string help;
  std::string source;  // where the default comes from: "paper", "code: DeepSpeed", ...
};

class Knobs {
 public:
  Knobs() = default;
  // Resolves `overrides` against `specs`; an unknown name is an error listing the known ones.
  Knobs(const std::string& method, const std::vector<KnobSpec>& specs,
        const std::map<std::string, std::string>& overrides);

  double GetDouble(const std::string& name) const;
  int64_t GetInt(const std::string& name) const;
  bool GetBool(const std::string& name) const;
  const std::string& GetString(const std::string& name) const;
  // The resolved values, every knob present (for the run spec and the database).
  const std::map<std::string, std::string>& values() const { return values_; }
  const std::string& method() const { return method_; }

 private:
  std::string method_;
  std::map<std::string, std::string> values_;
};

}  // namespace moebench
