// `moebench bleu`: sacreBLEU's command line for BLEU and chrF on local files.
//   moebench bleu REF [REF...] [-i HYP [HYP...]] [-m bleu chrf] [-tok 13a] [-s exp] [-lc]
//                 [--sentence-level] [-f json|text] [-b] [-w 1] [--paired-bs [--paired-bs-n N]]
// Hypotheses come from stdin unless -i names files; with several -i files the first is the
// baseline of --paired-bs. See cmd_bleu.cpp for where we differ from `sacrebleu`.
#pragma once

namespace CLI {
class App;
}

namespace moebench {

// Adds the `bleu` subcommand to `app`.
void RegisterBleuCommand(CLI::App& app);

}  // namespace moebench
