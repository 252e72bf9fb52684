// `moebench data prepare l10n|synthetic|files`: builds a corpus and prints its sizes.
#include <iostream>
#include <memory>
#include <stdexcept>

#include <CLI/CLI.hpp>

#include "datasets/corpus.h"
#include "datasets/files.h"
#include "datasets/l10n.h"
#include "datasets/synthetic.h"
#include "harness/cli/cli_common.h"

namespace moebench {

void RegisterDataCommand(CLI::App& app) {
  struct Args {
    std::string dataset;
    std::vector<std::string> langs;
    std::string data_dir;
  };
  auto a = std::make_shared<Args>();
  CLI::App* data = app.add_subcommand("data", "datasets");
  data->require_subcommand(1);
  CLI::App* prepare = data->add_subcommand(
      "prepare", "build a corpus (l10n: download and parse Debian's translation catalogs)");
  prepare->add_option("dataset", a->dataset, "l10n | synthetic | files")
      ->required()
      ->check(CLI::IsMember({"l10n", "synthetic", "files"}));
  prepare->add_option("--langs", a->langs, "target languages")->delimiter(',');
  prepare->add_option("--data-dir", a->data_dir, "files: the folder of train/valid/test files");
  prepare->callback([a]() {
    ParallelCorpus corpus;
    if (a->dataset == "l10n") {
      L10nOptions opt;
      if (!a->langs.empty()) opt.langs = a->langs;
      corpus = MakeL10nCorpus(opt);
    } else if (a->dataset == "synthetic") {
      SyntheticOptions opt;
      if (!a->langs.empty()) opt.langs = a->langs;
      corpus = MakeSyntheticCorpus(opt);
    } else {
      if (a->data_dir.empty())
        throw std::invalid_argument("data prepare files: --data-dir is required");
      corpus = LoadFilesCorpus(a->data_dir, a->langs);
    }
    std::cout << FormatCorpusSizes(corpus);
  });
}

}  // namespace moebench
