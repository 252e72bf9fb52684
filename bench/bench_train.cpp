// One training step per size preset (switch routing, one worker): forward, label-smoothed CE
// plus aux loss, backward, gradient clipping, Adam. A batch of 64 sentence pairs of 32 tokens
// each side (2048 target tokens, the run spec's default tokens_per_batch), random ids over a
// 1000-piece vocabulary, no padding. Reports target tokens/s and the process's peak RSS: run one
// preset per process (--benchmark_filter) for a per-preset peak.
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include "bench/bench_registry.h"
#include "harness/autocast.h"
#include "harness/comm/local_comm.h"
#include "harness/model/sizes.h"
#include "harness/model/transformer.h"
#include "methods/method.h"

namespace moebench::bench {

namespace {

constexpr int64_t kVocab = 1000;
constexpr int64_t kSentences = 64;
constexpr int64_t kLength = 32;
constexpr int64_t kFirstRealId = 4;  // below: pad, bos, eos, unk

void RunTrainStep(benchmark::State& state, const BenchConfig& config, const std::string& size) {
  at::manual_seed(4);
  ModelConfig cfg = SizePreset(size);
  cfg.vocab = kVocab;
  const std::unique_ptr<Method> method = MakeMethod("switch", {});
  LocalComm comm(Topology{1, 1});
  Transformer model(cfg, method.get(), &comm);
  model->to(config.device);
  model->train();
  std::vector<at::Tensor> params;
  for (const at::Tensor& p : model->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  torch::optim::Adam optimizer(params,
                               torch::optim::AdamOptions(1e-4).betas({0.9, 0.98}).eps(1e-9));
  const at::Tensor src =
      at::randint(kFirstRealId, kVocab, {kSentences, kLength}, at::kLong).to(config.device);
  const at::Tensor tgt =
      at::randint(kFirstRealId, kVocab, {kSentences, kLength + 1}, at::kLong).to(config.device);
  const at::Tensor tgt_in = tgt.narrow(1, 0, kLength).contiguous();
  const at::Tensor tgt_out = tgt.narrow(1, 1, kLength).contiguous();
  const int64_t ntokens = kSentences * kLength;

  int64_t step = 0;
  auto train_step = [&] {
    RouteContext ctx;
    ctx.training = true;
    ctx.step = ++step;
    return TimedMs(config, [&] {
      const ForwardFn forward = [&](int pass) {
        RouteContext c = ctx;
        c.pass = pass;
        ForwardOutput out;
        AutocastScope autocast(config.device.type(), config.bf16);
        out.logits = model->forward(src, tgt_in, c);
        auto [ce, nll] =
            LabelSmoothedCrossEntropy(out.logits, tgt_out, cfg.label_smoothing, model->pad_id());
        out.ce_sum = ce;
        out.nll_sum = nll;
        out.aux = model->AuxLoss();
        out.target_mask = tgt_out.ne(model->pad_id());
        out.ntokens = ntokens;
        return out;
      };
      ObjectiveOutput obj = method->Objective(forward);
      optimizer.zero_grad();
      obj.loss.backward();
      torch::nn::utils::clip_grad_norm_(params, 1.0);
      optimizer.step();
    });
  };

  for (int i = 0; i < config.warmup; ++i) train_step();
  std::vector<double> ms;
  for (auto _ : state) {
    ms.push_back(train_step());
    state.SetIterationTime(ms.back() / 1000.0);
  }
  const double med = Median(ms);
  state.counters["step_ms"] = med;
  state.counters["tokens_per_s"] = static_cast<double>(ntokens) / (med / 1000.0);
  state.counters["peak_rss_mb"] = PeakRssMb();
}

}  // namespace

void RegisterTrainStepBenchmarks(const BenchConfig& config) {
  std::vector<std::string> sizes = {"tiny"};
  if (!config.smoke) sizes.push_back("small");
  if (config.long_mode) sizes.push_back("base");
  for (const std::string& size : sizes) {
    const std::string name = "TrainStep/" + size;
    benchmark::RegisterBenchmark(
        name.c_str(), [config, size](benchmark::State& st) { RunTrainStep(st, config, size); })
        ->Iterations(config.iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace moebench::bench
