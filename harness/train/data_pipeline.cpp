#include "harness/train/data_pipeline.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "datasets/batching.h"
#include "datasets/files.h"
#include "datasets/l10n.h"
#include "datasets/prng.h"
#include "datasets/synthetic.h"
#include "harness/model/sizes.h"
#include "harness/train/device.h"

namespace moebench {

namespace {
// A sentence the model cannot take: the source is <2lang> pieces </s>, the target's input
// <s> pieces; neither may be longer than the model's positions.
void CheckLength(size_t tokens, const std::string& at, const std::string& split, size_t index,
                 const RunSpec& spec, int64_t max_positions) {
  if (static_cast<int64_t>(tokens) <= max_positions) return;
  const std::string where =
      at.empty() ? spec.dataset + " dataset, " + split + " sentence " + std::to_string(index + 1)
                 : at;
  throw std::runtime_error(where + ": the sentence is " + std::to_string(tokens) +
                           " tokens long with its tags, longer than the model's " +
                           std::to_string(max_positions) + " positions (size " + spec.size +
                           "); shorten or remove it");
}

std::vector<EncodedExample> Encode(const std::vector<ParallelExample>& split, const Vocab& vocab,
                                   const std::vector<std::string>& langs, const std::string& name,
                                   const RunSpec& spec) {
  const int64_t max_positions = SizePreset(spec.size).max_positions;
  std::vector<EncodedExample> out;
  out.reserve(split.size());
  for (const auto& ex : split) {
    EncodedExample e;
    e.lang = static_cast<int>(std::find(langs.begin(), langs.end(), ex.lang) - langs.begin());
    e.src.push_back(vocab.LangTagId(ex.lang));
    for (int id : vocab.Encode(ex.src)) e.src.push_back(id);
    e.src.push_back(vocab.eos_id());
    e.tgt = vocab.Encode(ex.tgt);
    CheckLength(e.src.size(), ex.src_at, name, out.size(), spec, max_positions);
    CheckLength(e.tgt.size() + 1, ex.tgt_at, name, out.size(), spec, max_positions);
    out.push_back(std::move(e));
  }
  return out;
}
}  // namespace

TranslationData LoadTranslationData(const RunSpec& spec) {
  ParallelCorpus corpus;
  if (spec.dataset == "synthetic") {
    SyntheticOptions opt;
    opt.seed = 1;  // the task is fixed; the run seed varies the model, not the data
    if (!spec.langs.empty()) opt.langs = spec.langs;
    corpus = MakeSyntheticCorpus(opt);
  } else if (spec.dataset == "files") {
    if (spec.data_dir.empty()) throw std::invalid_argument("dataset files: data_dir is not set");
    corpus = LoadFilesCorpus(spec.data_dir, spec.langs);
  } else if (spec.dataset == "l10n") {
    L10nOptions opt;
    if (!spec.langs.empty()) opt.langs = spec.langs;
    corpus = MakeL10nCorpus(opt);
  } else {
    throw std::invalid_argument("unknown dataset '" + spec.dataset +
                                "' (known: synthetic, files, l10n)");
  }
  VocabOptions vopt;
  vopt.vocab_size = static_cast<int>(spec.vocab_size);
  Vocab vocab = Vocab::BuildOrLoad(corpus, vopt);
  TranslationData data{corpus, vocab, corpus.langs, {}, {}, {}};
  data.train = Encode(corpus.train, vocab, data.langs, "train", spec);
  data.valid = Encode(corpus.valid, vocab, data.langs, "valid", spec);
  data.test = Encode(corpus.test, vocab, data.langs, "test", spec);
  if (data.train.empty())
    throw std::runtime_error("dataset " + spec.dataset + ": empty train split");
  return data;
}

std::vector<EncodedExample> ResampleByLanguage(const std::vector<EncodedExample>& examples,
                                               int n_langs, double temperature, uint64_t seed) {
  if (temperature <= 0) throw std::invalid_argument("lang_temperature must be > 0");
  if (temperature == 1.0 || n_langs <= 1) return examples;
  std::vector<std::vector<int64_t>> by_lang(n_langs);
  for (size_t i = 0; i < examples.size(); ++i) by_lang[examples[i].lang].push_back(i);
  const double n = static_cast<double>(examples.size());
  std::vector<double> share(n_langs, 0.0);
  double total = 0;
  for (int l = 0; l < n_langs; ++l) {
    if (by_lang[l].empty()) continue;
    share[l] = std::pow(static_cast<double>(by_lang[l].size()) / n, 1.0 / temperature);
    total += share[l];
  }
  std::vector<EncodedExample> out;
  out.reserve(examples.size());
  SplitMix64 rng(seed);
  for (int l = 0; l < n_langs; ++l) {
    if (by_lang[l].empty()) continue;
    const int64_t want = static_cast<int64_t>(std::llround(n * share[l] / total));
    std::vector<int64_t> order = by_lang[l];
    for (int64_t i = 0; i < want; ++i) {
      const int64_t m = static_cast<int64_t>(order.size());
      if (i % m == 0) rng.Shuffle(order);
      out.push_back(examples[order[i % m]]);
    }
  }
  return out;
}

std::vector<std::vector<int64_t>> BatchSplit(const std::vector<EncodedExample>& examples,
                                             int64_t tokens_per_batch, bool shuffle,
                                             uint64_t seed) {
  std::vector<int> src_lens, tgt_lens;
  src_lens.reserve(examples.size());
  tgt_lens.reserve(examples.size());
  for (const auto& e : examples) {
    src_lens.push_back(static_cast<int>(e.src.size()));
    tgt_lens.push_back(static_cast<int>(e.tgt.size()) + 1);
  }
  return MakeTokenBatches(src_lens, tgt_lens, tokens_per_batch, shuffle, seed);
}

Batch ToDevice(Batch batch, const at::Device& device) {
  batch.src = OnDevice(batch.src, device);
  batch.tgt_in = OnDevice(batch.tgt_in, device);
  batch.tgt_out = OnDevice(batch.tgt_out, device);
  batch.ntokens_tensor =
      OnDevice(at::full({}, static_cast<double>(batch.ntokens), at::kDouble), device);
  return batch;
}

Batch MakeBatch(const std::vector<EncodedExample>& examples, const std::vector<int64_t>& rows,
                const Vocab& vocab) {
  int64_t s = 1, l = 1;
  for (int64_t r : rows) {
    s = std::max<int64_t>(s, static_cast<int64_t>(examples[r].src.size()));
    l = std::max<int64_t>(l, static_cast<int64_t>(examples[r].tgt.size()) + 1);
  }
  const int64_t b = static_cast<int64_t>(rows.size());
  Batch batch;
  batch.src = at::full({b, s}, vocab.pad_id(), at::kLong);
  batch.tgt_in = at::full({b, l}, vocab.pad_id(), at::kLong);
  batch.tgt_out = at::full({b, l}, vocab.pad_id(), at::kLong);
  auto src = batch.src.accessor<int64_t, 2>();
  auto tin = batch.tgt_in.accessor<int64_t, 2>();
  auto tout = batch.tgt_out.accessor<int64_t, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const EncodedExample& e = examples[rows[i]];
    for (size_t j = 0; j < e.src.size(); ++j) src[i][j] = e.src[j];
    tin[i][0] = vocab.bos_id();
    for (size_t j = 0; j < e.tgt.size(); ++j) {
      tin[i][j + 1] = e.tgt[j];
      tout[i][j] = e.tgt[j];
    }
    tout[i][e.tgt.size()] = vocab.eos_id();
    batch.ntokens += static_cast<int64_t>(e.tgt.size()) + 1;
    batch.src_lengths.push_back(static_cast<int64_t>(e.src.size()));
    batch.tgt_lengths.push_back(static_cast<int64_t>(e.tgt.size()) + 1);
  }
  batch.rows = rows;
  return batch;
}

EpochBatches::EpochBatches(const TranslationData& data, const RunSpec& spec)
    : data_(data), spec_(spec) {}

void EpochBatches::Build(int64_t epoch) {
  const uint64_t seed =
      static_cast<uint64_t>(spec_.seed) * 1000003ULL + static_cast<uint64_t>(epoch);
  pool_ = ResampleByLanguage(data_.train, static_cast<int>(data_.langs.size()),
                             spec_.lang_temperature, seed);
  batches_ = BatchSplit(pool_, spec_.tokens_per_batch, true, seed);
  if (batches_.empty()) throw std::runtime_error("no training batches");
}

const std::vector<int64_t>& EpochBatches::ForStep(int64_t step) {
  const int64_t s0 = step - 1;
  if (epoch_ < 0 || s0 < epoch_start_) {
    epoch_ = 0;
    epoch_start_ = 0;
    Build(0);
  }
  while (s0 >= epoch_start_ + static_cast<int64_t>(batches_.size())) {
    epoch_start_ += static_cast<int64_t>(batches_.size());
    Build(++epoch_);
  }
  return batches_[s0 - epoch_start_];
}

}  // namespace moebench
