// `moebench diff RUN_A RUN_B [--only-changed]`: two runs side by side, as `dvc exp diff` shows
// two experiments: run columns, every spec field and knob (defaults filled in), and the final
// value of every metric, with the change from A to B. Read-only. `--bleu` adds the paired
// bootstrap of B's BLEU against A's that `moebench compare` prints (harness/cli/run_significance.h:
// the headline over languages by default, from the runs' stored per-sentence test outputs).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/cli/run_significance.h"
#include "harness/cli/table_output.h"
#include "harness/store/store.h"
#include "harness/sweep/run_groups.h"

namespace moebench {
namespace {

struct DiffArgs {
  std::string db = kDefaultDb, run_a, run_b, format = "table";
  bool only_changed = false;
  bool bleu = false;
  SignificanceOptions sig;
};

std::optional<double> AsNumber(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

struct DiffRow {
  std::string section, key;
  std::optional<std::string> a, b;  // nullopt: the run has no such value
  bool numeric = false;
};

std::vector<Cell> Render(const DiffRow& d, bool* changed) {
  auto side = [&](const std::optional<std::string>& v) {
    if (!v) return Cell::Null();
    if (d.numeric) {
      if (auto x = AsNumber(*v)) return Cell::Number(*x);
    }
    return Cell::Text(*v);
  };
  Cell change = Cell::Null(), relative = Cell::Null();
  *changed = false;
  if (d.a && d.b) {
    const auto x = AsNumber(*d.a);
    const auto y = AsNumber(*d.b);
    if (x && y) {
      *changed = *x != *y && !(std::isnan(*x) && std::isnan(*y));
      if (*changed) {
        change = Cell::Number(*y - *x);
        if (*x != 0) relative = Cell::Text(FormatNumber(100.0 * (*y - *x) / std::fabs(*x)) + "%");
      }
    } else if (*d.a != *d.b) {
      *changed = true;
      change = Cell::Text("changed");
    }
  } else if (d.a || d.b) {
    *changed = true;
    change = Cell::Text(d.a ? "only in A" : "only in B");
  }
  return {Cell::Text(d.section), Cell::Text(d.key), side(d.a), side(d.b), change, relative};
}

// The bootstrap's rows (kept by --only-changed): the BLEU of A and B that it tested and B's
// p-value; in csv, json and md also its note (the table prints the note under the table).
void AddSignificanceRows(const Significance& sig, const DiffArgs& args,
                         std::vector<std::vector<Cell>>* rows) {
  const std::string what = args.sig.split + "_bleu." + args.sig.lang;
  Cell change = Cell::Null(), relative = Cell::Null();
  if (sig.bleu_a && sig.bleu_b) {
    change = Cell::Number(*sig.bleu_b - *sig.bleu_a);
    if (*sig.bleu_a != 0) {
      relative = Cell::Text(
          FormatNumber(100.0 * (*sig.bleu_b - *sig.bleu_a) / std::fabs(*sig.bleu_a)) + "%");
    }
  }
  rows->push_back({Cell::Text("significance"), Cell::Text(what), Cell::Number(sig.bleu_a),
                   Cell::Number(sig.bleu_b), change, relative});
  rows->push_back({Cell::Text("significance"), Cell::Text("p_value"), Cell::Null(),
                   Cell::Number(sig.p_value), Cell::Null(), Cell::Null()});
  if (args.format != "table") {
    rows->push_back({Cell::Text("significance"), Cell::Text("test"), Cell::Text(sig.note),
                     Cell::Null(), Cell::Null(), Cell::Null()});
  }
}

void Diff(const DiffArgs& args) {
  CheckTableFormat(args.format);
  Store store(args.db, Store::Mode::kReadOnly);
  auto a = store.FindRun(args.run_a);
  if (!a) throw std::invalid_argument("no run '" + args.run_a + "' in " + args.db);
  auto b = store.FindRun(args.run_b);
  if (!b) throw std::invalid_argument("no run '" + args.run_b + "' in " + args.db);

  std::vector<DiffRow> diffs;
  auto run_row = [&](const std::string& key, const std::string& va, const std::string& vb,
                     bool numeric) {
    diffs.push_back({"run", key, va, vb, numeric});
  };
  run_row("id", a->id, b->id, false);
  run_row("status", RunStatusName(a->status), RunStatusName(b->status), false);
  run_row("sweep", a->sweep_id, b->sweep_id, false);
  run_row("params_total", std::to_string(a->params_total), std::to_string(b->params_total), true);
  run_row("params_active", std::to_string(a->params_active), std::to_string(b->params_active),
          true);

  const auto flat_a = FlatSpec(*a);
  const auto flat_b = FlatSpec(*b);
  std::set<std::string> keys;
  for (const auto& [k, v] : flat_a) keys.insert(k);
  for (const auto& [k, v] : flat_b) keys.insert(k);
  for (const std::string& k : keys) {
    auto ia = flat_a.find(k);
    auto ib = flat_b.find(k);
    DiffRow d{"spec", k, std::nullopt, std::nullopt, false};
    if (ia != flat_a.end()) d.a = ia->second;
    if (ib != flat_b.end()) d.b = ib->second;
    diffs.push_back(d);
  }

  const auto ma = store.LatestMetrics(a->id);
  const auto mb = store.LatestMetrics(b->id);
  std::set<std::string> metric_keys;
  for (const auto& [k, m] : ma) metric_keys.insert(k);
  for (const auto& [k, m] : mb) metric_keys.insert(k);
  auto number_text = [](double v) {
    if (std::isnan(v)) return std::string("nan");
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", v);
    return std::string(buf);
  };
  for (const std::string& k : metric_keys) {
    DiffRow d{"metrics", k, std::nullopt, std::nullopt, true};
    if (auto it = ma.find(k); it != ma.end()) d.a = number_text(it->second.value);
    if (auto it = mb.find(k); it != mb.end()) d.b = number_text(it->second.value);
    diffs.push_back(d);
  }

  std::vector<std::vector<Cell>> rows;
  for (const DiffRow& d : diffs) {
    bool changed = false;
    std::vector<Cell> row = Render(d, &changed);
    if (args.only_changed && !changed && d.key != "id") continue;
    rows.push_back(row);
  }
  std::optional<Significance> sig;
  if (args.bleu) {
    sig = PairedSignificance(store, *a, *b, args.sig);
    AddSignificanceRows(*sig, args, &rows);
  }
  PrintTable({"section", "key", "A", "B", "change", "relative"}, rows, args.format, std::cout);
  if (args.format != "table") return;
  if (sig) {
    std::cout << "\n" << SignificanceLine(*sig, args.sig) << "\n";
  } else {
    std::cout << "\nBLEU significance of B against A (paired bootstrap): moebench diff " << a->id
              << " " << b->id << " --bleu, or moebench compare " << a->id << " " << b->id
              << " --db " << args.db << "\n";
  }
}

}  // namespace

void RegisterDiffCommand(CLI::App& app) {
  auto args = std::make_shared<DiffArgs>();
  CLI::App* cmd = app.add_subcommand(
      "diff", "two runs side by side: run columns, spec fields and knobs, final metrics, change");
  AddDbOption(*cmd, args->db);
  cmd->add_option("run_a", args->run_a, "run A (id or unique prefix)")->required();
  cmd->add_option("run_b", args->run_b, "run B (id or unique prefix)")->required();
  cmd->add_flag("--only-changed", args->only_changed,
                "only the rows where A and B differ (and the ids)");
  cmd->add_option("--format", args->format, kTableFormats)->capture_default_str();
  cmd->add_flag("--bleu", args->bleu,
                "also test B's BLEU against A's: the paired bootstrap of `moebench compare` on "
                "the runs' stored per-sentence outputs");
  const std::vector<CLI::Option*> sig_options =
      AddSignificanceOptions(*cmd, &args->sig, "with --bleu: ");
  cmd->callback([args, sig_options]() {
    for (const CLI::Option* option : sig_options) {
      if (option->count() > 0 && !args->bleu) {
        throw std::invalid_argument(option->get_name() + " goes with --bleu");
      }
    }
    Diff(*args);
  });
}

}  // namespace moebench
