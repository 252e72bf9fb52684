// One training step per size preset (switch routing, one worker): forward, label-smoothed CE
// plus aux loss, backward, gradient clipping, Adam (the trainer's update: Note [Replayable
// optimizer step]). A batch of 32-token sentence pairs (2048
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
#include <torch/optim/adam.h>

#include "bench/bench_registry.h"
#include "harness/autocast.h"
#include "harness/comm/local_comm.h"
#include "harness/model/sizes.h"
#include "harness/model/transformer.h"
#include "harness/spec/resolve.h"
#include "harness/torch_compat.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/replayable_adam.h"
#include "harness/train/tensor_memory.h"
#include "methods/method.h"

namespace moebench::bench {

namespace {

constexpr int64_t kVocab = 1000;
constexpr int64_t kLength = 32;      // the default sentence length (--train-length)
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
  const int64_t length = config.train_length;
  const int64_t sentences = std::max<int64_t>(1, tokens / length);
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
  ReplayableAdam update(optimizer, 1e-4, /*warmup=*/4000);
  const ParamSplit split = SplitParams(model);
  const at::Tensor src =
      at::randint(kFirstRealId, kVocab, {sentences, length}, at::kLong).to(config.device);
  const at::Tensor tgt =
      at::randint(kFirstRealId, kVocab, {sentences, length + 1}, at::kLong).to(config.device);
  const at::Tensor tgt_in = tgt.narrow(1, 0, length).contiguous();
  const at::Tensor tgt_out = tgt.narrow(1, 1, length).contiguous();
  const int64_t ntokens = sentences * length;

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
      // Gradients zeroed in place, held between steps on either LibTorch (2.x frees them by
      // default), so held_mb and step_peak_mb mean the same on both builds.
#if MOEBENCH_TORCH_AT_LEAST(2, 0)
      optimizer.zero_grad(/*set_to_none=*/false);
#else
      optimizer.zero_grad();  // 1.13: in place
#endif
      obj.loss.backward();
      ClipGlobalGradNorm(comm, split, 1.0);
      update.Step(step);
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
  for (const std::string& size : sizes) {
    std::vector<int64_t> budgets = {kDefaultTokens};
    for (int64_t budget : config.train_tokens) {
      // 0 stands for `gpu`: the tokens of one forward of the size's GPU step (Note [GPU batch
      // defaults]: its budget per device in the fewest micro-batches that fit).
      int64_t tokens = budget;
      if (budget == 0) {
        const GpuBatch gpu = GpuBatchDefaults(size);
        const int64_t micro =
            (gpu.tokens_per_device + gpu.micro_batch_tokens - 1) / gpu.micro_batch_tokens;
        tokens = (gpu.tokens_per_device + micro - 1) / micro;
      }
      if (std::find(budgets.begin(), budgets.end(), tokens) == budgets.end()) {
        budgets.push_back(tokens);
      }
    }
    for (int64_t tokens : budgets) {
      const std::string name =
          "TrainStep/" + size +
          (tokens == kDefaultTokens ? "" : "/tokens:" + std::to_string(tokens)) +
          (config.train_length == kLength ? "" : "/length:" + std::to_string(config.train_length));
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
