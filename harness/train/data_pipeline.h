// Corpus -> SentencePiece vocabulary -> token ids -> padded batch tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "datasets/corpus.h"
#include "datasets/vocab.h"
#include "harness/spec/run_spec.h"

namespace moebench {

struct EncodedExample {
  std::vector<int> src;  // <2lang> src-pieces </s>
  std::vector<int> tgt;  // tgt-pieces (bos/eos added when batching)
  int lang = 0;          // index into TranslationData::langs
};

struct TranslationData {
  ParallelCorpus corpus;
  Vocab vocab;
  std::vector<std::string> langs;
  std::vector<EncodedExample> train, valid, test;
};

struct Batch {
  at::Tensor src;             // [B, S] int64, pad 0
  at::Tensor tgt_in;          // [B, L] bos + target
  at::Tensor tgt_out;         // [B, L] target + eos
  std::vector<int64_t> rows;  // example indices
  int64_t ntokens = 0;        // real target tokens
  // ntokens as a 0-dim double on the batch's device (ToDevice makes it): the loss's divisor
  // as a tensor, not a host scalar a CUDA graph would bake in (ForwardOutput::normaliser).
  at::Tensor ntokens_tensor;
  // Real tokens per sentence of src and of tgt_in (bos + target), known on the host; the
  // sentences are right-padded (Note [Host synchronisation]).
  std::vector<int64_t> src_lengths, tgt_lengths;
};

// Builds or loads the dataset named by the spec (synthetic | files).
TranslationData LoadTranslationData(const RunSpec& spec);
Batch MakeBatch(const std::vector<EncodedExample>& examples, const std::vector<int64_t>& rows,
                const Vocab& vocab);
// The batch's tensors on `device` (built on the host; copied without waiting), ntokens_tensor
// among them.
Batch ToDevice(Batch batch, const at::Device& device);
// Multilingual sampling with temperature T: language l gets a share proportional to
// (n_l / n)^(1/T) of the n examples of an epoch (T = 1: the data's own proportions, returned
// as is; large T: uniform over languages). Examples of a language are drawn without
// replacement, cycling through a seeded shuffle when a language is up-sampled.
std::vector<EncodedExample> ResampleByLanguage(const std::vector<EncodedExample>& examples,
                                               int n_langs, double temperature, uint64_t seed);

// Token-bucketed batches over a split (see datasets/batching.h).
std::vector<std::vector<int64_t>> BatchSplit(const std::vector<EncodedExample>& examples,
                                             int64_t tokens_per_batch, bool shuffle, uint64_t seed);

// The training batches, step by step: each epoch resamples languages (temperature), buckets by
// length and shuffles the batch order, all seeded by (seed, epoch), so a resumed run sees the
// same batches at the same steps.
class EpochBatches {
 public:
  EpochBatches(const TranslationData& data, const RunSpec& spec);
  // The batch of (1-based) `step`, as rows of pool(); valid until the next call.
  const std::vector<int64_t>& ForStep(int64_t step);
  const std::vector<EncodedExample>& pool() const { return pool_; }

 private:
  void Build(int64_t epoch);
  const TranslationData& data_;
  const RunSpec& spec_;
  std::vector<EncodedExample> pool_;
  std::vector<std::vector<int64_t>> batches_;
  int64_t epoch_ = -1, epoch_start_ = 0;  // epoch_start_: first (0-based) step of the epoch
};

}  // namespace moebench
