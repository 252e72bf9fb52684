// One training step per size preset (switch routing, one worker): forward, label-smoothed CE
// plus aux loss, backward, gradient clipping, Adam. A batch of 32-token sentence pairs (2048
// target tokens by default, the run spec's CPU tokens_per_batch: 64 pairs; --train-tokens
// adds other budgets, `gpu` each size's GPU micro-batch), random ids over a 1000-piece
// vocabulary, no padding. Reports target tokens/s, the process's peak RSS (run one preset per
// process, --benchmark_filter, for a per-preset peak), the bytes the step holds between steps
// (weights, gradients, Adam's moments) and the peak of the tensors it allocates on top (Note
// [Tensor memory]), measured in one more untimed step.
#include <algorithm>
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
#include "harness/spec/resolve.h"
#include "harness/train/tensor_memory.h"
#include "methods/method.h"

namespace moebench::bench {

namespace {

constexpr int64_t kVocab = 1000;
constexpr int64_t kLength = 32;
constexpr int64_t kFirstRealId = 4;  // below: pad, bos, eos, unk
constexpr int64_t kDefaultTokens = 2048;

// Bytes of the tensors a step keeps between steps: parameters, gradients, optimizer state.
int64_t HeldBytes(const std::vector<at::Tensor>& params, torch::optim::Optimizer& optimizer) {
  int64_t bytes = 0;
  for (const at::Tensor& p : params) {
    bytes += p.nbytes();
    if (p.grad().defined()) bytes += p.grad().nbytes();
  }
  for (const auto& [key, state] : optimizer.state()) {
    (void)key;
    const auto& adam = static_cast<const torch::optim::AdamParamState&>(*state);
    bytes += adam.exp_avg().nbytes() + adam.exp_avg_sq().nbytes();
  }
  return bytes;
}

void RunTrainStep(benchmark::State& state, const BenchConfig& config, const std::string& size,
                  int64_t tokens) {
  const int64_t kSentences = std::max<int64_t>(1, tokens / kLength);
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
  constexpr double kMb = 1024.0 * 1024.0;
  state.counters["held_mb"] = static_cast<double>(HeldBytes(params, optimizer)) / kMb;
  int64_t step_peak = 0;
  {
    TensorMemoryScope memory(config.device);
    train_step();
    step_peak = memory.PeakBytes();
  }
  state.counters["step_peak_mb"] = static_cast<double>(step_peak) / kMb;
  state.counters["step_bytes_per_token"] = static_cast<double>(step_peak) / ntokens;
}

}  // namespace

void RegisterTrainStepBenchmarks(const BenchConfig& config) {
  std::vector<std::string> sizes = config.train_sizes;
  if (sizes.empty()) {
    sizes.push_back("tiny");
    if (!config.smoke) sizes.push_back("small");
    if (config.long_mode) sizes.push_back("base");
  }
  std::vector<int64_t> budgets = {kDefaultTokens};
  budgets.insert(budgets.end(), config.train_tokens.begin(), config.train_tokens.end());
  for (const std::string& size : sizes) {
    for (int64_t budget : budgets) {
      // 0 stands for `gpu`: the size's GPU micro-batch (Note [GPU batch defaults]).
      const int64_t tokens = budget > 0 ? budget : GpuBatchDefaults(size).micro_batch_tokens;
      const std::string name =
          "TrainStep/" + size +
          (budget == kDefaultTokens ? "" : "/tokens:" + std::to_string(tokens));
      benchmark::RegisterBenchmark(
          name.c_str(),
          [config, size, tokens](benchmark::State& st) { RunTrainStep(st, config, size, tokens); })
          ->Iterations(config.iterations)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace moebench::bench
