#include "harness/bleu/per_language.h"

#include <stdexcept>

#include "harness/bleu/tokenizer.h"

namespace moebench {

namespace {

std::vector<std::string> Subset(const std::vector<std::string>& items,
                                const std::vector<size_t>& indices) {
  std::vector<std::string> out;
  out.reserve(indices.size());
  for (size_t i : indices) out.push_back(items[i]);
  return out;
}

std::vector<std::vector<std::string>> SubsetStreams(
    const std::vector<std::vector<std::string>>& refs, const std::vector<size_t>& indices) {
  std::vector<std::vector<std::string>> out;
  for (const std::vector<std::string>& stream : refs) out.push_back(Subset(stream, indices));
  return out;
}

void CheckStreams(size_t num_hyps, const std::vector<std::vector<std::string>>& refs,
                  size_t num_langs, const std::string& caller) {
  if (num_langs != num_hyps) {
    throw std::runtime_error(caller + ": " + std::to_string(num_hyps) + " hypotheses but " +
                             std::to_string(num_langs) + " language codes");
  }
  for (size_t r = 0; r < refs.size(); ++r) {
    if (refs[r].size() != num_hyps) {
      throw std::runtime_error(caller + ": reference stream " + std::to_string(r + 1) + " has " +
                               std::to_string(refs[r].size()) + " segments but there are " +
                               std::to_string(num_hyps) + " hypotheses");
    }
  }
}

// Spreads per-language statistics into the blocks of Note [Statistics by language].
SegmentStats Blocks(size_t num_segments, const LanguageGroups& groups,
                    const std::vector<SegmentStats>& per_language, int64_t width) {
  const int64_t block = 1 + width;
  SegmentStats out;
  out.num_segments = static_cast<int64_t>(num_segments);
  out.width = block * static_cast<int64_t>(groups.languages.size());
  out.values.assign(static_cast<size_t>(out.num_segments * out.width), 0);
  for (size_t l = 0; l < groups.languages.size(); ++l) {
    for (size_t j = 0; j < groups.segments[l].size(); ++j) {
      int64_t* row = out.values.data() + static_cast<int64_t>(groups.segments[l][j]) * out.width +
                     static_cast<int64_t>(l) * block;
      row[0] = 1;
      const int64_t* src = per_language[l].Row(static_cast<int64_t>(j));
      for (int64_t k = 0; k < width; ++k) row[1 + k] = src[k];
    }
  }
  return out;
}

ScoreFromStats MeanOverBlocks(size_t num_languages, int64_t width, ScoreFromStats score) {
  return [num_languages, width, score](const std::vector<int64_t>& summed) {
    const size_t block = static_cast<size_t>(1 + width);
    if (summed.size() != block * num_languages) {
      throw std::runtime_error("mean over languages: expected " +
                               std::to_string(block * num_languages) + " statistics, got " +
                               std::to_string(summed.size()));
    }
    double total = 0;
    int present = 0;
    for (size_t l = 0; l < num_languages; ++l) {
      if (summed[l * block] == 0) continue;
      const auto first = summed.begin() + static_cast<std::ptrdiff_t>(l * block + 1);
      total += score(std::vector<int64_t>(first, first + width));
      ++present;
    }
    return present > 0 ? total / present : 0.0;
  };
}

}  // namespace

LanguageGroups GroupByLanguage(const std::vector<std::string>& langs) {
  std::map<std::string, std::vector<size_t>> by_lang;
  for (size_t i = 0; i < langs.size(); ++i) {
    if (langs[i].empty()) {
      throw std::runtime_error("segment " + std::to_string(i + 1) + " has an empty language code");
    }
    by_lang[langs[i]].push_back(i);
  }
  LanguageGroups groups;
  for (auto& [lang, segments] : by_lang) {
    groups.languages.push_back(lang);
    groups.segments.push_back(std::move(segments));
  }
  return groups;
}

BleuOptions BleuOptionsForLanguage(const BleuOptions& bleu, const std::string& lang,
                                   const std::string& tokenizer_override) {
  BleuOptions opt = bleu;
  opt.tokenize = tokenizer_override.empty() ? TokenizerForLanguage(lang) : tokenizer_override;
  return opt;
}

std::vector<BleuScore> CorpusBleuByLanguage(const std::vector<std::string>& hyps,
                                            const std::vector<std::vector<std::string>>& refs,
                                            const LanguageGroups& groups, const BleuOptions& bleu,
                                            const std::string& tokenizer_override) {
  std::vector<BleuScore> scores;
  for (size_t l = 0; l < groups.languages.size(); ++l) {
    scores.push_back(
        CorpusBleu(Subset(hyps, groups.segments[l]), SubsetStreams(refs, groups.segments[l]),
                   BleuOptionsForLanguage(bleu, groups.languages[l], tokenizer_override)));
  }
  return scores;
}

std::vector<ChrfScore> CorpusChrfByLanguage(const std::vector<std::string>& hyps,
                                            const std::vector<std::vector<std::string>>& refs,
                                            const LanguageGroups& groups, const ChrfOptions& chrf) {
  std::vector<ChrfScore> scores;
  for (size_t l = 0; l < groups.languages.size(); ++l) {
    scores.push_back(CorpusChrf(Subset(hyps, groups.segments[l]),
                                SubsetStreams(refs, groups.segments[l]), chrf));
  }
  return scores;
}

std::string MeanSignature(const std::string& metric, const std::vector<std::string>& languages,
                          const std::vector<std::string>& signatures) {
  std::string out = "mean of per-language " + metric + ": ";
  for (size_t l = 0; l < languages.size(); ++l) {
    out += (l > 0 ? "; " : "") + languages[l] + ":" + signatures[l];
  }
  return out;
}

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
  std::map<std::string, LanguageScore> scores;
  const LanguageGroups groups = GroupByLanguage(langs);
  if (groups.languages.empty()) return scores;
  const std::vector<BleuScore> b = CorpusBleuByLanguage(hyps, {refs}, groups, bleu);
  const std::vector<ChrfScore> c = CorpusChrfByLanguage(hyps, {refs}, groups, chrf);
  LanguageScore mean;
  std::vector<std::string> bleu_signatures, chrf_signatures;
  for (size_t l = 0; l < groups.languages.size(); ++l) {
    const int64_t n = static_cast<int64_t>(groups.segments[l].size());
    scores[groups.languages[l]] = {b[l].score, c[l].score, b[l].signature, c[l].signature, n};
    mean.bleu += b[l].score;
    mean.chrf += c[l].score;
    mean.n_sentences += n;
    bleu_signatures.push_back(b[l].signature);
    chrf_signatures.push_back(c[l].signature);
  }
  const double count = static_cast<double>(groups.languages.size());
  mean.bleu /= count;
  mean.chrf /= count;
  mean.bleu_signature = MeanSignature("BLEU", groups.languages, bleu_signatures);
  mean.chrf_signature = MeanSignature(ChrfName(chrf), groups.languages, chrf_signatures);
  scores[""] = mean;
  return scores;
}

SegmentStats BleuSegmentStatsByLanguage(const std::vector<std::string>& hyps,
                                        const std::vector<std::vector<std::string>>& refs,
                                        const LanguageGroups& groups, const BleuOptions& bleu,
                                        const std::string& tokenizer_override) {
  std::vector<SegmentStats> per_language;
  for (size_t l = 0; l < groups.languages.size(); ++l) {
    per_language.push_back(
        BleuSegmentStats(Subset(hyps, groups.segments[l]), SubsetStreams(refs, groups.segments[l]),
                         BleuOptionsForLanguage(bleu, groups.languages[l], tokenizer_override)));
  }
  return Blocks(hyps.size(), groups, per_language, 2 + 2 * bleu.max_ngram_order);
}

SegmentStats ChrfSegmentStatsByLanguage(const std::vector<std::string>& hyps,
                                        const std::vector<std::vector<std::string>>& refs,
                                        const LanguageGroups& groups, const ChrfOptions& chrf) {
  std::vector<SegmentStats> per_language;
  for (size_t l = 0; l < groups.languages.size(); ++l) {
    per_language.push_back(ChrfSegmentStats(Subset(hyps, groups.segments[l]),
                                            SubsetStreams(refs, groups.segments[l]), chrf));
  }
  return Blocks(hyps.size(), groups, per_language, 3 * (chrf.char_order + chrf.word_order));
}

ScoreFromStats MeanBleuOverLanguages(size_t num_languages, const BleuOptions& bleu) {
  return MeanOverBlocks(
      num_languages, 2 + 2 * bleu.max_ngram_order,
      [bleu](const std::vector<int64_t>& s) { return BleuFromStats(s, bleu).score; });
}

ScoreFromStats MeanChrfOverLanguages(size_t num_languages, const ChrfOptions& chrf) {
  return MeanOverBlocks(num_languages, 3 * (chrf.char_order + chrf.word_order),
                        [chrf](const std::vector<int64_t>& s) { return ChrfFromStats(s, chrf); });
}

PairedBootstrapOptions StratifiedByLanguage(const PairedBootstrapOptions& opt,
                                            const LanguageGroups& groups) {
  PairedBootstrapOptions stratified = opt;
  stratified.strata = groups.segments;
  return stratified;
}

PairedBootstrapResult PairedBootstrapBleuByLanguage(
    const std::vector<std::vector<std::string>>& systems,
    const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& langs,
    const BleuOptions& bleu, const PairedBootstrapOptions& opt,
    const std::string& tokenizer_override) {
  const LanguageGroups groups = GroupByLanguage(langs);
  std::vector<SegmentStats> stats;
  for (const std::vector<std::string>& hyps : systems) {
    CheckStreams(hyps.size(), refs, langs.size(), "paired bootstrap by language");
    stats.push_back(BleuSegmentStatsByLanguage(hyps, refs, groups, bleu, tokenizer_override));
  }
  return PairedBootstrap(stats, MeanBleuOverLanguages(groups.languages.size(), bleu),
                         StratifiedByLanguage(opt, groups));
}

PairedBootstrapResult PairedBootstrapChrfByLanguage(
    const std::vector<std::vector<std::string>>& systems,
    const std::vector<std::vector<std::string>>& refs, const std::vector<std::string>& langs,
    const ChrfOptions& chrf, const PairedBootstrapOptions& opt) {
  const LanguageGroups groups = GroupByLanguage(langs);
  std::vector<SegmentStats> stats;
  for (const std::vector<std::string>& hyps : systems) {
    CheckStreams(hyps.size(), refs, langs.size(), "paired bootstrap by language");
    stats.push_back(ChrfSegmentStatsByLanguage(hyps, refs, groups, chrf));
  }
  return PairedBootstrap(stats, MeanChrfOverLanguages(groups.languages.size(), chrf),
                         StratifiedByLanguage(opt, groups));
}

}  // namespace moebench
