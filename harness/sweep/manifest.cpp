#include "harness/sweep/manifest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "harness/model/sizes.h"
#include "harness/spec/resolve.h"
#include "harness/spec/run_spec_check.h"
#include "harness/sweep/manifest_values.h"
#include "harness/util/hash.h"
#include "methods/method.h"

namespace moebench {

std::string ManifestIssue::ToString() const {
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

namespace {

std::string JoinIssues(const std::vector<ManifestIssue>& issues) {
  std::string s = std::to_string(issues.size()) + " problem" + (issues.size() == 1 ? "" : "s") +
                  " in the sweep manifest:";
  for (const ManifestIssue& issue : issues) s += "\n  " + issue.ToString();
  return s;
}

}  // namespace

ManifestError::ManifestError(std::vector<ManifestIssue> issues)
    : std::runtime_error(JoinIssues(issues)), issues_(std::move(issues)) {}

std::string Manifest::Text() const {
  std::string s;
  for (const ManifestFile& f : files) s += "# ==> " + f.path + " <==\n" + f.text + "\n";
  return s;
}

std::string Manifest::Hash() const { return Sha256Hex(Text()); }

std::string Manifest::SweepId() const {
  std::vector<std::string> ids;
  for (const PlannedRun& r : runs) ids.push_back(r.id);
  std::sort(ids.begin(), ids.end());
  std::string key = name;
  for (const std::string& id : ids) key += "\n" + id;
  return name + "-" + Sha256Hex(key).substr(0, 8);
}

namespace {

// ---- the merged document ----------------------------------------------------------------------
// toml++ does not keep source positions when a node is copied, so the files stay parsed and
// alive, and the merge builds a tree of pointers into them, each with the file and line of the
// key that set it.
struct Entry {
  const toml::node* value = nullptr;  // the leaf, or the (last) table that defined this table
  std::string file;
  int line = 0;
  bool is_table = false;
  std::map<std::string, Entry> children;  // for tables
};

class Loader {
 public:
  explicit Loader(std::vector<ManifestIssue>* issues) : issues_(issues) {}

  // Loads `path` (reading it unless `text` is given) and its includes into `root`.
  void Load(const std::string& path, const std::string* text, Entry* root) {
    const std::string canonical = Canonical(path);
    if (std::find(stack_.begin(), stack_.end(), canonical) != stack_.end()) {
      Issue(stack_.empty() ? path : stack_.back(), 0, "include",
            "include cycle: " + path + " includes itself (directly or through another file)");
      return;
    }
    std::string content;
    if (text != nullptr) {
      content = *text;
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        Issue(path, 0, "", "cannot read the file");
        return;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      content = ss.str();
    }
    files_.push_back({path, content});
    auto doc = std::make_unique<toml::table>();
    try {
      *doc = toml::parse(content, path);
    } catch (const toml::parse_error& e) {
      Issue(path, static_cast<int>(e.source().begin.line), "",
            "TOML syntax error: " + std::string(e.description()));
      return;
    }
    const toml::table& table = *doc;
    docs_.push_back(std::move(doc));
    stack_.push_back(canonical);
    if (const toml::node* inc = table.get("include")) {
      const int line = static_cast<int>(inc->source().begin.line);
      std::vector<std::string> includes;
      if (const auto* s = inc->as_string()) {
        includes.push_back(s->get());
      } else if (const auto* arr = inc->as_array()) {
        for (const toml::node& n : *arr) {
          if (const auto* s2 = n.as_string()) {
            includes.push_back(s2->get());
          } else {
            Issue(path, line, "include", "expected a file name (string), got " + TypeName(n));
          }
        }
      } else {
        Issue(path, line, "include",
              "expected a file name or a list of them, got " + TypeName(*inc));
      }
      const std::filesystem::path dir = std::filesystem::path(path).parent_path();
      for (const std::string& inc_path : includes) {
        const std::string resolved = std::filesystem::path(inc_path).is_absolute()
                                         ? inc_path
                                         : (dir / inc_path).lexically_normal().string();
        if (!std::filesystem::exists(resolved)) {
          Issue(path, line, "include", "no such file: " + resolved);
          continue;
        }
        Load(resolved, nullptr, root);
      }
    }
    stack_.pop_back();
    Merge(table, path, root, "");
  }

  const std::vector<ManifestFile>& files() const { return files_; }

 private:
  static std::string Canonical(const std::string& path) {
    std::error_code ec;
    auto c = std::filesystem::weakly_canonical(path, ec);
    return ec ? path : c.string();
  }

  void Merge(const toml::table& table, const std::string& file, Entry* into,
             const std::string& prefix) {
    into->is_table = true;
    for (const auto& [key, node] : table) {
      const std::string name(key.str());
      if (prefix.empty() && name == "include") continue;
      const int line = static_cast<int>(key.source().begin.line);
      Entry& child = into->children[name];
      if (const toml::table* sub = node.as_table()) {
        if (!child.is_table) child = Entry();
        child.value = &node;
        child.file = file;
        child.line = line;
        Merge(*sub, file, &child, prefix + name + ".");
      } else {
        child = Entry();
        child.value = &node;
        child.file = file;
        child.line = line;
      }
    }
  }

  void Issue(const std::string& file, int line, const std::string& key, const std::string& msg) {
    issues_->push_back({file, line, key, msg});
  }

  std::vector<ManifestIssue>* issues_;
  std::vector<std::unique_ptr<toml::table>> docs_;
  std::vector<ManifestFile> files_;
  std::vector<std::string> stack_;
};

// ---- where run-spec fields go -------------------------------------------------------------------

// Fields a section may set, from the field table (Note [Run spec fields]). method, size and
// seed vary per run: they come from [matrix] or [[runs]].
const std::map<std::string, std::vector<std::string>>& SectionFields() {
  static const std::map<std::string, std::vector<std::string>> sections = [] {
    std::map<std::string, std::vector<std::string>> out;
    for (const SpecField& f : RunSpecFields()) {
      if (*f.section != '\0') out[f.section].push_back(f.key);
    }
    return out;
  }();
  return sections;
}

// Run-spec fields that RunSpec::ToJson writes only when they differ from their defaults (so
// that the ids of runs made before they existed do not change). The manifest takes them like
// any other field, starting from these defaults.
nlohmann::json OptionalFieldDefaults() {
  const nlohmann::json defaults = RunSpec::FieldDefaults();
  nlohmann::json out = nlohmann::json::object();
  for (const SpecField& f : RunSpecFields()) {
    if (!f.in_json_at_default) out[f.key] = defaults.at(f.key);
  }
  return out;
}

const std::set<std::string>& PerRunFields() {
  static const std::set<std::string> fields = {"method", "size", "seed"};
  return fields;
}

// Fields the manifest never sets: knobs come from [methods.*] and `<method>.<knob>`, the sweep
// tag is the runner's.
const std::set<std::string>& ReservedFields() {
  static const std::set<std::string> fields = {"knobs", "sweep"};
  return fields;
}

std::string SectionOf(const std::string& field) {
  for (const auto& [section, fields] : SectionFields()) {
    if (std::find(fields.begin(), fields.end(), field) != fields.end()) return section;
  }
  if (PerRunFields().count(field) || ReservedFields().count(field)) return "";
  return "train";
}

// Levenshtein distance, for "did you mean" hints.
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Suggest(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = 3;  // at most 2 edits away
  for (const std::string& k : known) {
    const size_t d = EditDistance(key, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// ---- the builder ----------------------------------------------------------------------------

struct Axis {
  std::string key;     // as written: "lr", "switch.capacity_factor"
  std::string method;  // non-empty for a knob axis
  std::string name;    // the field or knob name
  std::vector<nlohmann::json> field_values;
  std::vector<std::string> knob_values;
};

class Builder {
 public:
  Builder(const Entry& root, std::vector<ManifestIssue>* issues, const std::string& main_file)
      : root_(root), issues_(issues), main_file_(main_file) {
    for (const MethodInfo& m : MethodRegistry()) method_names_.push_back(m.name);
    for (const ModelConfig& c : SizePresets()) size_names_.push_back(c.size);
    base_ = RunSpec().ToJson();
    const nlohmann::json optional = OptionalFieldDefaults();
    for (const auto& [field, value] : optional.items()) {
      if (!base_.contains(field)) base_[field] = value;
    }
    for (const auto& [field, value] : base_.items()) spec_fields_.push_back(field);
  }

  Manifest Build() {
    Manifest m;
    CheckTopLevel();
    ReadSweepSection(&m);
    for (const auto& [section, unused] : SectionFields()) ReadSection(section);
    ReadMethodTables();
    ReadMatrix();
    ReadRuns();
    if (!has_matrix_ && runs_.empty() && !runs_given_) {
      Issue(main_file_, 0, "", "nothing to run: add a [matrix] with a method list, or [[runs]]");
    }
    if (!issues_->empty()) return m;
    Expand(&m);
    return m;
  }

 private:
  void Issue(const Entry& e, const std::string& key, const std::string& msg) {
    issues_->push_back({e.file, e.line, key, msg});
  }
  void Issue(const std::string& file, int line, const std::string& key, const std::string& msg) {
    issues_->push_back({file, line, key, msg});
  }

  bool CheckMethod(const Entry& e, const std::string& key, const std::string& method) {
    if (std::find(method_names_.begin(), method_names_.end(), method) != method_names_.end()) {
      return true;
    }
    Issue(e, key,
          "unknown method '" + method + "' (registered: " + JoinNames(method_names_) + ")" +
              Suggest(method, method_names_));
    return false;
  }

  void CheckTopLevel() {
    static const std::vector<std::string> known = {
        "include", "sweep", "matrix", "runs", "data", "model", "topology", "train", "methods"};
    for (const auto& [key, e] : root_.children) {
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string hint = Suggest(key, known);
      if (hint.empty()) {
        const std::string section = SectionOf(key);
        if (std::find(spec_fields_.begin(), spec_fields_.end(), key) != spec_fields_.end()) {
          hint = section.empty() ? " (put it in [matrix] or [[runs]])"
                                 : " (it belongs in [" + section + "])";
        }
      }
      Issue(e, key, "unknown top-level key" + hint + "; known: " + JoinNames(known));
    }
    for (const char* section :
         {"sweep", "matrix", "data", "model", "topology", "train", "methods"}) {
      auto it = root_.children.find(section);
      if (it != root_.children.end() && !it->second.is_table) {
        Issue(it->second, section,
              "expected a table ([" + std::string(section) + "]), got " +
                  TypeName(*it->second.value));
      }
    }
  }

  const Entry* Table(const std::string& name) const {
    auto it = root_.children.find(name);
    if (it == root_.children.end() || !it->second.is_table) return nullptr;
    return &it->second;
  }

  void ReadSweepSection(Manifest* m) {
    m->name = std::filesystem::path(main_file_).stem().string();
    const Entry* sweep = Table("sweep");
    if (sweep == nullptr) return;
    for (const auto& [key, e] : sweep->children) {
      const std::string path = "sweep." + key;
      if (key != "name" && key != "description" && key != "claims") {
        Issue(e, path,
              "unknown key" + Suggest(key, {"name", "description", "claims"}) +
                  "; [sweep] takes name, description and claims");
        continue;
      }
      if (key == "claims") {
        // The claim ids (reports/claims.py) this sweep is built to answer; the report and the
        // paper-manifest coverage test read them.
        const auto* list = e.value->as_array();
        if (list == nullptr) {
          Issue(e, path, "expected a list of claim ids, got " + TypeName(*e.value));
          continue;
        }
        for (const auto& item : *list) {
          const auto* id = item.as_string();
          const bool ok = id != nullptr && !id->get().empty() &&
                          std::all_of(id->get().begin(), id->get().end(), [](char c) {
                            return std::islower(static_cast<unsigned char>(c)) ||
                                   std::isdigit(static_cast<unsigned char>(c)) || c == '_' ||
                                   c == '.';
                          });
          if (!ok) {
            Issue(e, path, "claim ids are strings of a-z, 0-9, _ and . (e.g. \"gd.bytes\")");
            break;
          }
          m->claims.push_back(id->get());
        }
        continue;
      }
      const auto* s = e.value->as_string();
      if (s == nullptr) {
        Issue(e, path, "expected a string, got " + TypeName(*e.value));
        continue;
      }
      if (key == "description") {
        m->description = s->get();
        continue;
      }
      const std::string& name = s->get();
      const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      });
      if (!ok) {
        Issue(e, path, "'" + name + "' is not a valid sweep name (letters, digits, _ - . only)");
        continue;
      }
      m->name = name;
    }
  }

  // Converts one TOML value for a run-spec field; issues an error and returns false on a bad
  // type or value.
  bool FieldValue(const Entry& e, const std::string& path, const std::string& field,
                  const toml::node& node, nlohmann::json* out) {
    std::string why;
    if (field == "workers_per_node") per_node_given_ = true;
    if (field == "workers") workers_given_ = true;
    if (field == "tokens_per_batch") batch_given_.tokens_per_batch = true;
    if (field == "grad_accum") batch_given_.grad_accum = true;
    if (!TomlToField(node, base_[field], out, &why) || !ValidateField(field, *out, &why)) {
      Issue(e, path, why);
      return false;
    }
    if (field == "method") return CheckMethod(e, path, out->get<std::string>());
    if (field == "size") {
      const std::string size = out->get<std::string>();
      if (std::find(size_names_.begin(), size_names_.end(), size) == size_names_.end()) {
        Issue(e, path, "unknown size '" + size + "' (known: " + JoinNames(size_names_) + ")");
        return false;
      }
    }
    return true;
  }

  void ReadSection(const std::string& section) {
    const Entry* table = Table(section);
    if (table == nullptr) return;
    std::vector<std::string> allowed;
    for (const std::string& f : spec_fields_) {
      if (SectionOf(f) == section) allowed.push_back(f);
    }
    for (const auto& [key, e] : table->children) {
      const std::string path = section + "." + key;
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string hint = Suggest(key, allowed);
        const bool is_field =
            std::find(spec_fields_.begin(), spec_fields_.end(), key) != spec_fields_.end();
        if (hint.empty() && is_field) {
          const std::string other = SectionOf(key);
          hint = other.empty() ? " (" + key + " varies per run: set it in [matrix] or [[runs]])"
                               : " (it belongs in [" + other + "])";
        }
        Issue(e, path, "unknown key" + hint + "; [" + section + "] takes " + JoinNames(allowed));
        continue;
      }
      nlohmann::json value;
      if (FieldValue(e, path, key, *e.value, &value)) base_[key] = value;
    }
  }

  // Converts a knob value, checking the method and knob exist; false (with an issue) if not.
  bool KnobValue(const Entry& e, const std::string& path, const std::string& method,
                 const std::string& knob, const toml::node& node, std::string* out) {
    const MethodInfo& info = FindMethod(method);
    for (const KnobSpec& spec : info.knobs) {
      if (spec.name != knob) continue;
      std::string why;
      if (!TomlToKnob(node, spec.default_value, out, &why)) {
        Issue(e, path, why);
        return false;
      }
      return true;
    }
    std::vector<std::string> names;
    for (const KnobSpec& spec : info.knobs) names.push_back(spec.name);
    Issue(e, path,
          "unknown knob '" + knob + "' for method " + method + Suggest(knob, names) +
              " (known: " + (names.empty() ? "none" : JoinNames(names)) + ")");
    return false;
  }

  void ReadMethodTables() {
    const Entry* methods = Table("methods");
    if (methods == nullptr) return;
    for (const auto& [method, table] : methods->children) {
      const std::string path = "methods." + method;
      if (!table.is_table) {
        Issue(
            table, path,
            "expected a table of knobs ([methods." + method + "]), got " + TypeName(*table.value));
        continue;
      }
      if (!CheckMethod(table, path, method)) continue;
      for (const auto& [knob, e] : table.children) {
        std::string value;
        if (KnobValue(e, path + "." + knob, method, knob, *e.value, &value)) {
          method_knobs_[method][knob] = value;
        }
      }
    }
  }

  // A matrix list: issues an error (and returns null) when it is not a non-empty array.
  const toml::array* MatrixList(const Entry& e, const std::string& path) {
    const toml::array* arr = e.value->as_array();
    if (arr == nullptr) {
      Issue(e, path,
            "expected a list of values to cross, got " + TypeName(*e.value) +
                " (write [x] for one value)");
      return nullptr;
    }
    if (arr->empty()) {
      Issue(e, path, "empty list: the matrix would have no runs");
      return nullptr;
    }
    return arr;
  }

  void ReadKnobAxis(const Entry& e, const std::string& method, const std::string& knob) {
    const std::string path = "matrix." + method + "." + knob;
    const toml::array* arr = MatrixList(e, path);
    if (arr == nullptr) return;
    Axis axis;
    axis.key = method + "." + knob;
    axis.method = method;
    axis.name = knob;
    for (const toml::node& n : *arr) {
      std::string value;
      if (!KnobValue(e, path, method, knob, n, &value)) return;
      axis.knob_values.push_back(value);
    }
    knob_axes_[method].push_back(axis);
    knob_axis_entries_[method].push_back(&e);
  }

  void ReadMatrix() {
    const Entry* matrix = Table("matrix");
    if (matrix == nullptr) return;
    has_matrix_ = true;
    for (const auto& [key, e] : matrix->children) {
      const std::string path = "matrix." + key;
      // `switch.capacity_factor = [...]` parses as a table `switch`; a quoted
      // "switch.capacity_factor" key is the same thing.
      if (e.is_table) {
        if (!CheckMethod(e, path, key)) continue;
        for (const auto& [knob, ke] : e.children) ReadKnobAxis(ke, key, knob);
        continue;
      }
      const size_t dot = key.find('.');
      if (dot != std::string::npos) {
        const std::string method = key.substr(0, dot);
        if (!CheckMethod(e, path, method)) continue;
        ReadKnobAxis(e, method, key.substr(dot + 1));
        continue;
      }
      if (std::find(spec_fields_.begin(), spec_fields_.end(), key) == spec_fields_.end() ||
          ReservedFields().count(key)) {
        std::vector<std::string> candidates;
        for (const std::string& f : spec_fields_) {
          if (!ReservedFields().count(f)) candidates.push_back(f);
        }
        Issue(e, path,
              "unknown key" + Suggest(key, candidates) +
                  "; [matrix] takes run-spec fields (method, size, seed, lr, ...) and method "
                  "knobs as <method>.<knob>");
        continue;
      }
      const toml::array* arr = MatrixList(e, path);
      if (arr == nullptr) continue;
      Axis axis;
      axis.key = key;
      axis.name = key;
      bool ok = true;
      for (const toml::node& n : *arr) {
        nlohmann::json value;
        if (!FieldValue(e, path, key, n, &value)) {
          ok = false;
          continue;
        }
        axis.field_values.push_back(value);
      }
      // Valid methods of a partly bad list still count, so that their knob lists are not
      // reported as unused.
      if (!ok && key != "method") continue;
      if (key == "method") {
        method_axis_ = axis;
        method_entry_ = &e;
      } else {
        field_axes_.push_back(axis);
      }
    }
    // Knob axes of a method the matrix does not run would silently do nothing.
    for (const auto& [method, axes] : knob_axes_) {
      const bool in_axis =
          std::find(method_axis_.field_values.begin(), method_axis_.field_values.end(),
                    nlohmann::json(method)) != method_axis_.field_values.end();
      if (in_axis) continue;
      for (size_t i = 0; i < axes.size(); i++) {
        Issue(*knob_axis_entries_[method][i], "matrix." + axes[i].key,
              "method '" + method + "' is not in matrix.method, so this list would not be used");
      }
    }
    if (matrix->children.count("method") == 0) {
      Issue(*matrix, "matrix",
            "no 'method' list: name the methods to run, e.g. method = [\"switch\"]");
    }
    // Cross order: size, seed, then the other fields alphabetically (map order).
    std::stable_sort(field_axes_.begin(), field_axes_.end(), [](const Axis& a, const Axis& b) {
      auto rank = [](const std::string& k) { return k == "size" ? 0 : k == "seed" ? 1 : 2; };
      return rank(a.key) < rank(b.key);
    });
  }

  void ReadRuns() {
    auto it = root_.children.find("runs");
    if (it == root_.children.end()) return;
    runs_given_ = true;
    const Entry& e = it->second;
    const toml::array* arr = e.value->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      Issue(e, "runs", "expected [[runs]] tables, got " + TypeName(*e.value));
      return;
    }
    if (arr->empty()) Issue(e, "runs", "empty list of runs");
    for (size_t i = 0; i < arr->size(); i++) {
      const toml::table& t = *arr->get(i)->as_table();
      const std::string prefix = "runs[" + std::to_string(i) + "]";
      Entry where;
      where.file = e.file;
      where.line = static_cast<int>(t.source().begin.line);
      ExplicitRun run;
      run.entry = where;
      run.origin = prefix;
      run.spec = base_;
      bool ok = true;
      const toml::table* knobs = nullptr;
      int knobs_line = where.line;
      for (const auto& [key, node] : t) {
        const std::string name(key.str());
        Entry ke = where;
        ke.line = static_cast<int>(key.source().begin.line);
        const std::string path = prefix + "." + name;
        if (name == "knobs") {
          knobs = node.as_table();
          knobs_line = ke.line;
          if (knobs == nullptr) {
            Issue(
                ke, path,
                "expected a table, e.g. knobs = { capacity_factor = 2.0 }, got " + TypeName(node));
            ok = false;
          }
          continue;
        }
        if (std::find(spec_fields_.begin(), spec_fields_.end(), name) == spec_fields_.end() ||
            ReservedFields().count(name)) {
          Issue(ke, path,
                "unknown key" + Suggest(name, spec_fields_) +
                    "; a [[runs]] entry takes run-spec fields and knobs = { ... }");
          ok = false;
          continue;
        }
        nlohmann::json value;
        if (!FieldValue(ke, path, name, node, &value)) {
          ok = false;
          continue;
        }
        run.spec[name] = value;
      }
      if (!t.contains("method")) {
        Issue(where, prefix, "no method: every [[runs]] entry names its method");
        ok = false;
      }
      if (!ok) continue;
      const std::string method = run.spec["method"].get<std::string>();
      run.knobs = method_knobs_[method];
      if (knobs != nullptr) {
        for (const auto& [key, node] : *knobs) {
          Entry ke = where;
          ke.line = static_cast<int>(key.source().begin.line);
          if (ke.line == 0) ke.line = knobs_line;
          std::string value;
          const std::string name(key.str());
          if (!KnobValue(ke, prefix + ".knobs." + name, method, name, node, &value)) {
            ok = false;
            continue;
          }
          run.knobs[name] = value;
        }
      }
      if (ok) runs_.push_back(run);
    }
  }

  // Turns a full spec JSON into a planned run; issues an error at `where` if it fails.
  void AddRun(nlohmann::json spec_json, const std::map<std::string, std::string>& knobs,
              const std::string& origin, const Entry& where, Manifest* m,
              std::set<std::string>* seen) {
    spec_json["knobs"] = knobs;
    PlannedRun run;
    try {
      run.spec = RunSpec::FromJson(spec_json);
      // The rule `train --world-size N` follows too (Note [Rank layout]): the same run gets the
      // same id either way.
      ResolveLayout(run.spec, {workers_given_, per_node_given_});
      ResolveBatch(run.spec, batch_given_);  // Note [GPU batch defaults]
      ResolveKnobs(run.spec);
    } catch (const std::exception& e) {
      Issue(where, origin, e.what());
      return;
    }
    // Relations between fields, per run (each field was checked where it was written).
    bool related_ok = true;
    for (const SpecProblem& p : CheckSpecRelations(run.spec)) {
      Issue(where, origin + ": " + p.key, p.message);
      related_ok = false;
    }
    if (!related_ok) return;
    run.id = run.spec.RunId();
    run.origin = origin;
    if (!seen->insert(run.id).second) return;  // the same run twice is one run
    m->runs.push_back(run);
  }

  void Expand(Manifest* m) {
    std::set<std::string> seen;
    if (has_matrix_) {
      m->axes.push_back("method");
      for (const Axis& a : field_axes_) m->axes.push_back(a.key);
      for (const nlohmann::json& method_value : method_axis_.field_values) {
        const std::string method = method_value.get<std::string>();
        std::vector<const Axis*> axes;
        for (const Axis& a : field_axes_) axes.push_back(&a);
        for (const Axis& a : knob_axes_[method]) {
          axes.push_back(&a);
          if (std::find(m->axes.begin(), m->axes.end(), a.key) == m->axes.end()) {
            m->axes.push_back(a.key);
          }
        }
        // Odometer over the axes; the last axis varies fastest.
        std::vector<size_t> index(axes.size(), 0);
        bool done = false;
        while (!done) {
          nlohmann::json spec = base_;
          spec["method"] = method;
          std::map<std::string, std::string> knobs = method_knobs_[method];
          for (size_t i = 0; i < axes.size(); i++) {
            const Axis& a = *axes[i];
            if (a.method.empty()) {
              spec[a.name] = a.field_values[index[i]];
            } else {
              knobs[a.name] = a.knob_values[index[i]];
            }
          }
          AddRun(spec, knobs, "matrix", *method_entry_, m, &seen);
          done = true;
          for (size_t i = axes.size(); i > 0; i--) {
            const Axis& a = *axes[i - 1];
            const size_t n = a.method.empty() ? a.field_values.size() : a.knob_values.size();
            if (++index[i - 1] < n) {
              done = false;
              break;
            }
            index[i - 1] = 0;
          }
        }
      }
    }
    for (const ExplicitRun& r : runs_) AddRun(r.spec, r.knobs, r.origin, r.entry, m, &seen);
  }

  struct ExplicitRun {
    nlohmann::json spec;
    std::map<std::string, std::string> knobs;
    std::string origin;
    Entry entry;
  };

  const Entry& root_;
  std::vector<ManifestIssue>* issues_;
  std::string main_file_;
  std::vector<std::string> method_names_, size_names_, spec_fields_;
  nlohmann::json base_;
  std::map<std::string, std::map<std::string, std::string>> method_knobs_;
  bool has_matrix_ = false, runs_given_ = false;
  bool per_node_given_ = false;  // workers_per_node set anywhere in the manifest
  bool workers_given_ = false;   // workers set anywhere in the manifest
  BatchGiven batch_given_;       // tokens_per_batch, grad_accum set anywhere in the manifest
  const Entry* method_entry_ = nullptr;
  Axis method_axis_;
  std::vector<Axis> field_axes_;
  std::map<std::string, std::vector<Axis>> knob_axes_;
  std::map<std::string, std::vector<const Entry*>> knob_axis_entries_;
  std::vector<ExplicitRun> runs_;
};

Manifest Parse(const std::string& path, const std::string* text) {
  std::vector<ManifestIssue> issues;
  Loader loader(&issues);
  Entry root;
  root.is_table = true;
  loader.Load(path, text, &root);
  if (!issues.empty()) throw ManifestError(issues);
  Builder builder(root, &issues, path);
  Manifest m = builder.Build();
  if (!issues.empty()) {
    // File order, then line order: the order a reader fixes them in.
    std::vector<std::string> order;
    for (const ManifestFile& f : loader.files()) order.push_back(f.path);
    auto rank = [&](const std::string& f) {
      return std::find(order.begin(), order.end(), f) - order.begin();
    };
    std::stable_sort(issues.begin(), issues.end(),
                     [&](const ManifestIssue& a, const ManifestIssue& b) {
                       if (rank(a.file) != rank(b.file)) return rank(a.file) < rank(b.file);
                       return a.line < b.line;
                     });
    throw ManifestError(issues);
  }
  m.files = loader.files();
  return m;
}

}  // namespace

Manifest LoadManifest(const std::string& path) { return Parse(path, nullptr); }

Manifest ParseManifest(const std::string& text, const std::string& path) {
  return Parse(path, &text);
}

}  // namespace moebench
