// The MoE layer against the dense FFN of the same active FLOPs (docs/PERFORMANCE.md's method): one
// benchmark per shape times both, alternating, in the same process, and reports the medians
// (dense_ms, moe_ms) and their ratio. Top-1 is the registry's `switch` (capacity factor 1.25,
// jitter off) against d -> 4d -> d; top-2 is Top2Router (capacity factor 2.0 in total) against d ->
// 8d -> d. The same layer on the static-shape path is timed beside them (static_ms, static_ratio).
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include "bench/bench_registry.h"
#include "harness/autocast.h"
#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "methods/method.h"

namespace moebench::bench {

namespace {

struct LayerShape {
  int64_t tokens, d_model, num_experts, top_k;
};

std::shared_ptr<Router> MakeLayerRouter(const LayerShape& s) {
  if (s.top_k == 1) {
    LayerSpec spec;
    spec.d_model = s.d_model;
    spec.d_ff = 4 * s.d_model;
    spec.num_experts = s.num_experts;
    // No input jitter: the peer layers of docs/PERFORMANCE.md route without it, and its cost (a
    // uniform draw per input element) is measured with the router alone (Router/switch).
    return MakeMethod("switch", {{"jitter", "0"}})->MakeRouter(spec);
  }
  return std::make_shared<Top2Router>(s.d_model, s.num_experts, /*capacity_factor=*/2.0);
}

void RunLayerVsDense(benchmark::State& state, const BenchConfig& config, const std::string& name,
                     LayerShape s) {
  at::manual_seed(1);
  const int64_t d = s.d_model;
  DenseFfn dense(d, 4 * d * s.top_k, config.device);
  LocalComm comm(Topology{1, 1});
  MoeLayerOptions opt;
  opt.d_model = d;
  opt.d_hidden = 4 * d;
  opt.num_experts = s.num_experts;
  MoeLayer layer(opt, MakeLayerRouter(s), &comm);
  layer->to(config.device);
  layer->train();
  const std::vector<at::Tensor> moe_params = layer->parameters();
  // The same layer on the static-shape path (Note [Static-shape path]): the same weights.
  opt.static_shapes = true;
  MoeLayer fixed(opt, MakeLayerRouter(s), &comm);
  fixed->to(config.device);
  fixed->train();
  {
    at::NoGradGuard no_grad;
    const std::vector<at::Tensor> to = fixed->parameters();
    for (size_t i = 0; i < to.size(); ++i) to[i].copy_(moe_params[i]);
  }
  const std::vector<at::Tensor> static_params = fixed->parameters();
  const at::Tensor x = at::randn({s.tokens, d}).to(config.device).requires_grad_(true);
  const at::Tensor grad_out = at::randn({s.tokens, d}).to(config.device);
  const at::Tensor one = at::ones({}, x.options().requires_grad(false));
  const at::DeviceType dev = config.device.type();

  // Forward under autocast with --precision=bf16; the output gradient in the output's dtype.
  auto dense_step = [&] {
    dense.ClearGrads();
    ClearGrads({x});
    return TimedMs(config, [&] {
      at::Tensor y;
      {
        AutocastScope autocast(dev, config.bf16);
        y = dense.Forward(x);
      }
      y.backward(grad_out.to(y.scalar_type()));
    });
  };
  int64_t step = 0;
  auto step_of = [&](MoeLayer& l, const std::vector<at::Tensor>& params) {
    ClearGrads(params);
    ClearGrads({x});
    RouteContext ctx;
    ctx.training = true;
    ctx.step = ++step;
    // A training step that logs nothing (most of them): no routing statistics.
    ctx.statistics = false;
    // The token count on the host (the trainer's batches carry their lengths): no read for it.
    ctx.tokens_per_sentence = s.tokens;
    ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(1, s.tokens);
    return TimedMs(config, [&] {
      at::Tensor y;
      {
        AutocastScope autocast(dev, config.bf16);
        y = l->forward(x, at::Tensor(), ctx);
      }
      torch::autograd::backward({y, l->aux_loss()}, {grad_out.to(y.scalar_type()), one});
    });
  };
  auto moe_step = [&] { return step_of(layer, moe_params); };
  auto static_step = [&] {
    const double ms = step_of(fixed, static_params);
    fixed->FlushDeviceTally();  // outside the timing: the trainer does it at log steps
    return ms;
  };

  for (int i = 0; i < config.warmup; ++i) {
    dense_step();
    moe_step();
    static_step();
  }
  // The experts alone: the layer's grouped expert FFNs, forward + backward, on the rows per
  // expert of the last warm-up step (or of an extra step without warm-up), already grouped (no
  // routing, gather or combine). What is left of the ratio here is the GEMM efficiency of E
  // smaller GEMMs against one (see bench/README.md, "Why the remaining targets are not met").
  if (config.warmup == 0) moe_step();
  const std::vector<int64_t> counts = layer->last_stats().tokens_per_expert;
  int64_t rows = 0;
  for (int64_t c : counts) rows += c;
  const at::Tensor xs = at::randn({rows, d}).to(config.device).requires_grad_(true);
  const at::Tensor gs = at::randn({rows, d}).to(config.device);
  const Experts& experts = layer->experts();
  const std::vector<at::Tensor> expert_params = {experts.w1, experts.b1, experts.w2, experts.b2};
  auto experts_step = [&] {
    ClearGrads(expert_params);
    ClearGrads({xs});
    return TimedMs(config, [&] {
      at::Tensor y;
      {
        AutocastScope autocast(dev, config.bf16);
        y = experts.ForwardGrouped(xs, counts);
      }
      y.backward(gs.to(y.scalar_type()));
    });
  };
  for (int i = 0; i < config.warmup; ++i) experts_step();

  std::vector<double> dense_ms, moe_ms, static_ms, experts_ms, dense_faults, moe_faults;
  for (auto _ : state) {
    const int64_t f0 = MinorFaults();
    const double a = dense_step();
    const int64_t f1 = MinorFaults();
    const double b = moe_step();
    const int64_t f2 = MinorFaults();
    dense_ms.push_back(a);
    moe_ms.push_back(b);
    experts_ms.push_back(experts_step());
    static_ms.push_back(static_step());
    dense_faults.push_back(static_cast<double>(f1 - f0));
    moe_faults.push_back(static_cast<double>(f2 - f1));
    state.SetIterationTime((a + b) / 1000.0);
  }
  // Kernel-doing ATen ops per forward + backward (KernelOps): a GPU's launches per step.
  state.counters["dense_ops"] = static_cast<double>(KernelOps([&] { dense_step(); }));
  state.counters["moe_ops"] = static_cast<double>(KernelOps([&] { moe_step(); }));
  state.counters["static_ops"] =
      static_cast<double>(KernelOps([&] { step_of(fixed, static_params); }));
  fixed->FlushDeviceTally();
  ProfileStep(config, name, "dense", dense_step);
  ProfileStep(config, name, "moe", moe_step);
  ProfileStep(config, name, "static", static_step);
  const double dense_med = Median(dense_ms);
  const double moe_med = Median(moe_ms);
  // Useful FLOPs: the expert GEMMs, forward and both backward products (docs/PERFORMANCE.md).
  const double flops = 48.0 * static_cast<double>(s.tokens * s.top_k) * static_cast<double>(d * d);
  const MoeLayerStats& stats = layer->last_stats();
  state.counters["dense_ms"] = dense_med;
  state.counters["moe_ms"] = moe_med;
  state.counters["ratio"] = moe_med / dense_med;
  state.counters["experts_ms"] = Median(experts_ms);
  state.counters["experts_ratio"] = Median(experts_ms) / dense_med;
  // The static-shape path: its expert GEMMs run on every slot (E x C rows, capacity factor
  // included), so its useful FLOP rate is the same FLOPs over its time.
  state.counters["static_ms"] = Median(static_ms);
  state.counters["static_ratio"] = Median(static_ms) / dense_med;
  state.counters["static_tflops"] = flops / Median(static_ms) / 1e9;
  state.counters["dense_gflops"] = flops / dense_med / 1e6;
  state.counters["moe_gflops"] = flops / moe_med / 1e6;
  // Achieved FLOP/s in TFLOP/s (compare with the device's peak for the precision).
  state.counters["moe_tflops"] = flops / moe_med / 1e9;
  // Minor page faults per step (median): fresh memory touched (docs/PERFORMANCE.md, effect 2).
  state.counters["dense_faults"] = Median(dense_faults);
  state.counters["moe_faults"] = Median(moe_faults);
  state.counters["dropped_frac"] =
      stats.choices > 0 ? static_cast<double>(stats.dropped) / static_cast<double>(stats.choices)
                        : 0.0;
}

}  // namespace

void RegisterLayerBenchmarks(const BenchConfig& config) {
  std::vector<LayerShape> shapes;
  if (config.smoke) {
    shapes = {{256, 64, 4, 1}, {256, 64, 4, 2}};
  } else {
    for (int64_t t : {2048, 8192}) {
      for (int64_t d : {256, 512}) {
        for (int64_t e : {4, 8, 16}) {
          for (int64_t k : {1, 2}) shapes.push_back({t, d, e, k});
        }
      }
    }
    // --long: a shape where a GPU has work enough to fill it (the matrix is launch-bound
    // there; see bench/README.md).
    if (config.long_mode) {
      for (int64_t e : {8, 16}) {
        for (int64_t k : {1, 2}) shapes.push_back({32768, 1024, e, k});
      }
    }
    // On a GPU: the GPU issue's target shape (bf16 top-1 T 32768 d 2048 E 8: >= 50% of the
    // device's peak in useful FLOPs, <= 1.3x the dense FFN; bench/results_table.py marks it).
    if (config.device.is_cuda()) {
      for (int64_t k : {1, 2}) shapes.push_back({32768, 2048, 8, k});
    }
  }
  for (const LayerShape& s : shapes) {
    const std::string name = "Layer/top" + std::to_string(s.top_k) +
                             "/T:" + std::to_string(s.tokens) + "/d:" + std::to_string(s.d_model) +
                             "/E:" + std::to_string(s.num_experts);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [config, name, s](benchmark::State& st) { RunLayerVsDense(st, config, name, s); })
        ->Iterations(config.iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace moebench::bench
