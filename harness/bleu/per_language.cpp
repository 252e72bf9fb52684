#include "harness/bleu/per_language.h"

#include <stdexcept>
#include <utility>

#include "harness/bleu/tokenizer.h"

namespace moebench {

std::map<std::string, LanguageScore> ScoreByLanguage(const std::vector<std::string>& hyps,
                                                     const std::vector<std::string>& refs,
                                                     const std::vector<std::string>& langs,
                                                     const BleuOptions& bleu,
                                                     const ChrfOptions& chrf) {
  if (refs.size() != hyps.size() || langs.size() != hyps.size()) {
    throw std::runtime_error("ScoreByLanguage: " + std::to_string(hyps.size()) + " hypotheses, " +
                             std::to_string(refs.size()) + " references and " +
                             std::to_string(langs.size()) + " language codes");
  }
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::string>>> by_lang;
  for (size_t i = 0; i < hyps.size(); ++i) {
    if (langs[i].empty()) {
      throw std::runtime_error("ScoreByLanguage: sentence " + std::to_string(i + 1) +
                               " has an empty language code");
    }
    by_lang[langs[i]].first.push_back(hyps[i]);
    by_lang[langs[i]].second.push_back(refs[i]);
  }

  std::map<std::string, LanguageScore> scores;
  if (by_lang.empty()) return scores;
  LanguageScore mean;
  mean.bleu_signature = kMeanBleuSignaturePrefix;
  mean.chrf_signature = "mean of per-language " + ChrfName(chrf) + ": ";
  for (const auto& [lang, hr] : by_lang) {
    BleuOptions opt = bleu;
    opt.tokenize = TokenizerForLanguage(lang);
    const BleuScore b = CorpusBleu(hr.first, {hr.second}, opt);
    const ChrfScore c = CorpusChrf(hr.first, {hr.second}, chrf);
    LanguageScore& s = scores[lang];
    s = {b.score, c.score, b.signature, c.signature, static_cast<int64_t>(hr.first.size())};
    const std::string separator = mean.n_sentences == 0 ? "" : "; ";
    mean.bleu += s.bleu;
    mean.chrf += s.chrf;
    mean.bleu_signature += separator + lang + ":" + s.bleu_signature;
    mean.chrf_signature += separator + lang + ":" + s.chrf_signature;
    mean.n_sentences += s.n_sentences;
  }
  mean.bleu /= static_cast<double>(by_lang.size());
  mean.chrf /= static_cast<double>(by_lang.size());
  scores[""] = mean;
  return scores;
}

}  // namespace moebench
