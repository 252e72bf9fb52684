// `moebench methods` (the registry with every knob) and `moebench sizes` (the presets).
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "harness/cli/cli_common.h"
#include "harness/model/expert_layout.h"
#include "harness/model/param_count.h"
#include "harness/model/sizes.h"
#include "methods/method.h"

namespace moebench {

void RegisterMethodsCommand(CLI::App& app) {
  CLI::App* methods = app.add_subcommand("methods", "list the routing methods and their knobs");
  methods->callback([]() {
    for (const MethodInfo& info : MethodRegistry()) {
      std::cout << info.name << ": " << info.summary << "\n";
      std::vector<std::vector<std::string>> rows;
      for (const KnobSpec& k : info.knobs) {
        rows.push_back({"  " + k.name, k.default_value, k.source, k.help});
      }
      if (!rows.empty()) PrintRows({"  knob", "default", "source", "meaning"}, rows, "table");
      std::cout << "\n";
    }
    // The expert layout is a run-spec field, not a knob: one setting for every token-choice
    // router (Note [Shared and fine-grained experts]).
    std::cout << "expert layout (run-spec fields, `train --shared-experts N --expert-granularity "
                 "M`, manifest [model]), for the token-choice routers: "
              << TokenChoiceMethods() << "\n";
    PrintRows({"  field", "default", "source", "meaning"},
              {{"  shared_experts", "0", "paper: DeepSeekMoE (section 3.2)",
                "always-active experts beside the routed ones, no bytes"},
               {"  expert_granularity", "1", "paper: DeepSeekMoE (section 3.1)",
                "m: m x E routed experts of width d_ff/m, top m*k - shared_experts"}},
              "table");
  });

  auto vocab = std::make_shared<int64_t>(1000);
  auto method = std::make_shared<std::string>("switch");
  CLI::App* sizes =
      app.add_subcommand("sizes", "list the model size presets with parameter counts");
  sizes->add_option("--vocab", *vocab, "vocabulary size")->capture_default_str();
  sizes->add_option("--method", *method, "routing method")->capture_default_str();
  auto shared = std::make_shared<int64_t>(0);
  auto granularity = std::make_shared<int64_t>(1);
  auto knobs = std::make_shared<std::vector<std::string>>();
  sizes->add_option("--shared-experts", *shared, "shared experts per MoE layer")
      ->capture_default_str();
  sizes
      ->add_option("--expert-granularity", *granularity,
                   "split each expert into m of width d_ff/m (m*k - shared per token)")
      ->capture_default_str();
  sizes->add_option("--set", *knobs, "method knob as name=value (repeatable)");
  sizes->callback([vocab, method, shared, granularity, knobs]() {
    const std::map<std::string, std::string> overrides = ParseAssignments(*knobs, "--set");
    const std::unique_ptr<Method> m = MakeMethod(*method, overrides);
    std::vector<std::vector<std::string>> rows;
    for (ModelConfig cfg : SizePresets()) {
      cfg.vocab = *vocab;
      cfg.shared_experts = *shared;
      cfg.expert_granularity = *granularity;
      const ParamCounts c = CountModelParams(cfg, *method, overrides);
      const bool dense = m->DenseWidth(cfg.d_ff, cfg.num_experts) > 0;
      const ExpertLayout l = dense ? ExpertLayout{} : MoeExpertLayout(cfg, *m);
      auto num = [dense](int64_t v) { return dense ? std::string("-") : std::to_string(v); };
      rows.push_back({cfg.size, std::to_string(cfg.d_model), std::to_string(cfg.d_ff),
                      std::to_string(cfg.heads),
                      std::to_string(cfg.encoder_layers) + "+" + std::to_string(cfg.decoder_layers),
                      num(l.routed), num(l.top_k), num(l.shared), num(l.hidden),
                      num(l.active_hidden()), std::to_string(c.total), std::to_string(c.active)});
    }
    PrintRows({"size", "d_model", "d_ff", "heads", "layers", "experts", "top_k", "shared",
               "expert_ffn", "active_ffn", "params_total", "params_active"},
              rows, "table");
  });
}

}  // namespace moebench
