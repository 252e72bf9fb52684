#include "harness/train/evaluation.h"

#include <chrono>
#include <cmath>
#include <iostream>

#include "harness/autocast.h"
#include "harness/train/expert_parallel.h"

namespace moebench {

RunEvaluation::RunEvaluation(Training& t, RunRecord& record, std::string run_id)
    : t_(t), record_(record), run_id_(std::move(run_id)) {
  base_ctx_.seed = static_cast<uint64_t>(t.spec.seed);
  base_ctx_.total_steps = t.spec.max_steps;
  dopt_.beam = t.spec.beam;
  dopt_.length_penalty = t.spec.length_penalty;
  dopt_.max_len_a = t.spec.max_len_a;
  dopt_.max_len_b = t.spec.max_len_b;
}

EvalResult RunEvaluation::Run(const std::vector<EncodedExample>& split,
                              const std::vector<ParallelExample>& raw, int64_t max_sentences,
                              const RouteContext& ctx, const DecodeOptions& d) {
  GatheredExperts gathered(t_.model, *t_.comm);
  AutocastScope autocast(t_.device.type(), t_.bf16);
  return Evaluate(t_.model, t_.data, split, raw, max_sentences, t_.spec.label_smoothing, ctx, d,
                  t_.comm.get());
}

EvalResult RunEvaluation::Initial() {
  EvalResult first = Run(t_.data.valid, t_.data.corpus.valid, 0, base_ctx_, DecodeOptions());
  Record(0, 0.0, "valid", first, 0);
  t_.comm->meter().Drain();
  return first;
}

EvalResult RunEvaluation::Validate(int64_t step, double wall) {
  const auto pending = t_.comm->meter().Drain();  // evaluation traffic is not training's
  const auto e0 = std::chrono::steady_clock::now();
  EvalResult v =
      Run(t_.data.valid, t_.data.corpus.valid, t_.spec.valid_sentences, base_ctx_, dopt_);
  Record(step, wall, "valid", v, 0);
  if (Store* store = record_.store()) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
    store->LogMetrics(run_id_, {{step, wall, "eval_seconds", seconds}});
  }
  t_.comm->meter().Drain();
  t_.comm->meter().Restore(pending);
  return v;
}

void RunEvaluation::Final(int64_t step, double wall) {
  if (t_.spec.valid_sentences <= 0) return;
  const int64_t n = t_.spec.valid_sentences;
  EvalResult test = Run(t_.data.test, t_.data.corpus.test, n, base_ctx_, dopt_);
  Record(step, wall, "test", test, 0);
  RecordOutputs(step, "test", test, 0);
  // Any-k evaluation (self-slimmable curves): the same test sentences at each k. A model
  // without MoE layers (the dense baseline) has no k to vary and records no any-k rows.
  const bool has_experts = !t_.model->MoeLayers().empty();
  if (!has_experts && !t_.spec.eval_k.empty() && record_.writer()) {
    std::cerr << "[" << run_id_ << "] no MoE layer: eval_k skipped" << std::endl;
  }
  for (int64_t k : has_experts ? t_.spec.eval_k : std::vector<int64_t>{}) {
    RouteContext kctx = base_ctx_;
    kctx.eval_k = k;
    EvalResult tk = Run(t_.data.test, t_.data.corpus.test, n, kctx, dopt_);
    Record(step, wall, "test", tk, static_cast<int>(k));
    RecordOutputs(step, "test", tk, static_cast<int>(k));
    if (Store* store = record_.store()) {
      store->LogMetrics(run_id_, {{step, wall, "test_bleu_k" + std::to_string(k),
                                   tk.per_lang.count("") ? tk.per_lang.at("").bleu : 0.0}});
    }
  }
}

void RunEvaluation::RecordOutputs(int64_t step, const std::string& split, const EvalResult& r,
                                  int k) {
  Store* store = record_.store();
  if (store == nullptr) return;
  std::vector<OutputRow> rows;
  rows.reserve(r.hyps.size());
  for (size_t i = 0; i < r.hyps.size(); ++i) {
    rows.push_back(
        {run_id_, step, split, r.langs[i], k, static_cast<int64_t>(i), r.hyps[i], r.refs[i]});
  }
  store->LogOutputs(rows);
}

void RunEvaluation::Record(int64_t step, double wall_s, const std::string& split,
                           const EvalResult& r, int k) {
  Store* store = record_.store();
  if (store == nullptr) return;
  std::vector<EvalRow> rows;
  for (const auto& [lang, score] : r.per_lang) {
    EvalRow row;
    row.run_id = run_id_;
    row.step = step;
    row.wall_s = wall_s;
    row.split = split;
    row.lang = lang.empty() ? "all" : lang;
    row.k = k;
    row.bleu = score.bleu;
    row.chrf = score.chrf;
    row.signature = score.signature;
    row.decoding = r.decoding.dump();
    if (lang.empty()) {
      row.loss = r.nll;
    } else if (auto l = r.lang_loss.find(lang); l != r.lang_loss.end()) {
      row.loss = l->second.nll;
    }
    row.n_sentences = score.n_sentences;
    rows.push_back(row);
  }
  if (!rows.empty()) store->LogEvals(rows);
  if (k > 0) return;  // any-k scores live in evals only
  std::vector<MetricRow> m = {{step, wall_s, split + "_loss", r.loss},
                              {step, wall_s, split + "_nll", r.nll},
                              {step, wall_s, split + "_ppl", std::exp(r.nll)}};
  auto all = r.per_lang.find("");
  if (all != r.per_lang.end()) m.push_back({step, wall_s, split + "_bleu", all->second.bleu});
  // Per language (multilingual runs): "valid_loss.de", "valid_nll.de".
  if (r.lang_loss.size() > 1) {
    for (const auto& [lang, l] : r.lang_loss) {
      m.push_back({step, wall_s, split + "_loss." + lang, l.loss});
      m.push_back({step, wall_s, split + "_nll." + lang, l.nll});
    }
  }
  store->LogMetrics(run_id_, m);
}

}  // namespace moebench
