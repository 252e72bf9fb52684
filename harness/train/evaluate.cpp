#include "harness/train/evaluate.h"

#include <algorithm>

#include "harness/bleu/per_language.h"

namespace moebench {

namespace {
constexpr int64_t kEvalTokensPerBatch = 4096;
}

namespace {

// Every rank's strings, by index: rank r filled the indices it decoded (mine[i] true); the
// result has all of them. Lengths first, then the bytes, both by all-gather.
std::vector<std::string> GatherStrings(Comm& comm, const std::vector<std::string>& local,
                                       const std::vector<int>& owner) {
  std::string packed;
  std::vector<int64_t> lengths(local.size(), 0);
  for (size_t i = 0; i < local.size(); ++i) {
    if (owner[i] != comm.rank()) continue;
    lengths[i] = static_cast<int64_t>(local[i].size());
    packed += local[i];
  }
  const at::Tensor all_lengths = comm.AllGather(at::tensor(lengths)).contiguous();  // [W, n]
  const at::Tensor sizes =
      comm.AllGather(at::tensor(std::vector<int64_t>{static_cast<int64_t>(packed.size())}));
  const int64_t max_size = std::max<int64_t>(sizes.max().item<int64_t>(), 1);
  at::Tensor bytes = at::zeros({max_size}, at::kByte);
  std::copy(packed.begin(), packed.end(), bytes.data_ptr<uint8_t>());
  const at::Tensor all_bytes = comm.AllGather(bytes).contiguous();  // [W, max_size]
  std::vector<std::string> out(local.size());
  std::vector<int64_t> cursor(comm.size(), 0);
  const int64_t n = static_cast<int64_t>(local.size());
  for (int64_t i = 0; i < n; ++i) {
    const int r = owner[i];
    const int64_t len = all_lengths[r][i].item<int64_t>();
    const char* base = reinterpret_cast<const char*>(all_bytes[r].data_ptr<uint8_t>());
    out[i].assign(base + cursor[r], static_cast<size_t>(len));
    cursor[r] += len;
  }
  return out;
}

}  // namespace

EvalResult Evaluate(Transformer& model, const TranslationData& data,
                    const std::vector<EncodedExample>& split,
                    const std::vector<ParallelExample>& raw, int64_t max_sentences,
                    double label_smoothing, const RouteContext& ctx_in, DecodeOptions dopt,
                    Comm* ranks) {
  if (ranks != nullptr && ranks->plays_all_workers()) ranks = nullptr;
  const int shard = ranks ? ranks->rank() : 0;
  const int shards = ranks ? ranks->size() : 1;
  at::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  RouteContext ctx = ctx_in;
  ctx.training = false;
  // The batches go where the model is (Note [Device and precision]); the caller's autocast
  // scope, if any, applies to the forward passes here.
  const at::Device device = model->parameters().front().device();
  EvalResult result;
  double loss_sum = 0, nll_sum = 0;
  const auto loss_batches = BatchSplit(split, kEvalTokensPerBatch, false, 0);
  for (size_t bi = 0; bi < loss_batches.size(); ++bi) {
    if (static_cast<int>(bi % shards) != shard) continue;
    const std::vector<int64_t>& rows = loss_batches[bi];
    Batch b = ToDevice(MakeBatch(split, rows, data.vocab), device);
    at::Tensor logits = model->forward(b.src, b.tgt_in, ctx);
    auto [ce, nll] =
        LabelSmoothedCrossEntropyRows(logits, b.tgt_out, label_smoothing, model->pad_id());
    const at::Tensor ntok = b.tgt_out.ne(model->pad_id()).sum(1).to(at::kCPU);
    const at::Tensor ce_c = ce.to(at::kDouble).to(at::kCPU),
                     nll_c = nll.to(at::kDouble).to(at::kCPU);
    for (size_t i = 0; i < rows.size(); ++i) {
      const int lang_index = split[rows[i]].lang;
      const std::string lang = lang_index >= 0 && lang_index < static_cast<int>(data.langs.size())
                                   ? data.langs[lang_index]
                                   : std::to_string(lang_index);
      EvalResult::LangLoss& l = result.lang_loss[lang];
      l.loss += ce_c[i].item<double>();
      l.nll += nll_c[i].item<double>();
      l.tokens += ntok[i].item<int64_t>();
    }
    loss_sum += ce_c.sum().item<double>();
    nll_sum += nll_c.sum().item<double>();
    result.tokens += b.ntokens;
  }
  if (ranks) {
    // Sum the shards: totals, then every language's sums (in the data's language order).
    std::vector<double> v = {loss_sum, nll_sum, static_cast<double>(result.tokens)};
    for (const std::string& lang : data.langs) {
      const EvalResult::LangLoss& l = result.lang_loss[lang];
      v.insert(v.end(), {l.loss, l.nll, static_cast<double>(l.tokens)});
    }
    at::Tensor t = at::tensor(v, at::TensorOptions().dtype(at::kDouble));
    ranks->AllReduceSum(t);
    const double* s = t.data_ptr<double>();
    loss_sum = s[0];
    nll_sum = s[1];
    result.tokens = static_cast<int64_t>(s[2]);
    result.lang_loss.clear();
    for (size_t i = 0; i < data.langs.size(); ++i) {
      const int64_t tokens = static_cast<int64_t>(s[3 + 3 * i + 2]);
      if (tokens > 0) result.lang_loss[data.langs[i]] = {s[3 + 3 * i], s[3 + 3 * i + 1], tokens};
    }
  }
  result.loss = loss_sum / std::max<int64_t>(result.tokens, 1);
  result.nll = nll_sum / std::max<int64_t>(result.tokens, 1);
  for (auto& [lang, l] : result.lang_loss) {
    const double n = static_cast<double>(std::max<int64_t>(l.tokens, 1));
    l.loss /= n;
    l.nll /= n;
  }

  dopt.bos_id = data.vocab.bos_id();
  dopt.eos_id = data.vocab.eos_id();
  result.decoding = {{"search", dopt.beam > 1 ? "beam" : "greedy"},
                     {"beam", dopt.beam},
                     {"length_penalty", dopt.length_penalty},
                     {"max_len_a", dopt.max_len_a},
                     {"max_len_b", dopt.max_len_b},
                     {"batch_tokens", kEvalTokensPerBatch}};
  const int64_t n = std::min<int64_t>(max_sentences, static_cast<int64_t>(split.size()));
  if (n <= 0) {
    if (was_training) model->train();
    return result;
  }
  // The first n sentences of the split, decoded in length-sorted batches (fixed batching:
  // inference routing can depend on which sentences share a batch; docs/METHODS.md section 3).
  std::vector<EncodedExample> subset(split.begin(), split.begin() + n);
  std::vector<std::string> hyps(n);
  std::vector<int> owner(n, 0);
  const auto decode_batches = BatchSplit(subset, kEvalTokensPerBatch, false, 0);
  for (size_t bi = 0; bi < decode_batches.size(); ++bi) {
    const std::vector<int64_t>& rows = decode_batches[bi];
    const int r = static_cast<int>(bi % shards);
    for (int64_t row : rows) owner[row] = r;
    if (r != shard) continue;
    Batch b = ToDevice(MakeBatch(subset, rows, data.vocab), device);
    auto out = Decode(model, b.src, dopt, ctx);
    for (size_t i = 0; i < rows.size(); ++i) hyps[rows[i]] = data.vocab.Decode(out[i]);
  }
  if (ranks) hyps = GatherStrings(*ranks, hyps, owner);
  for (int64_t i = 0; i < n; ++i) {
    result.hyps.push_back(hyps[i]);
    result.refs.push_back(raw[i].tgt);
    result.langs.push_back(raw[i].lang);
  }
  // Each language with its own tokenizer; "" is the mean over languages (per_language.h).
  for (const auto& [lang, score] : ScoreByLanguage(result.hyps, result.refs, result.langs)) {
    result.per_lang[lang] = {score.bleu, score.chrf, score.bleu_signature, score.n_sentences};
  }
  if (was_training) model->train();
  return result;
}

}  // namespace moebench
