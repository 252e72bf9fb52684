// The experts' GEMMs on one CPU thread, split as a layer splits them against one product of all
// the rows: the six products of an expert FFN's forward and backward (x W1, h W2, dY W2^T,
// dH W1^T, h^T dY, x^T dH) for E experts of T / E rows each, against the same products over T
// rows with one weight. The same FLOPs either way; what the split pays is OpenBLAS's per-call
// work (each call packs its weight, 4 d^2 floats, for T / E rows instead of T). It is the part
// of the layer benchmark's ratio that no change to routing, dispatch or combine can remove (the
// concurrent schedule runs each expert's GEMMs on one thread: Note [Experts in parallel]).
// CPU only, fp32.
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "bench/bench_registry.h"
#include "harness/moe/cpu_threads.h"

namespace moebench::bench {

namespace {

struct GemmShape {
  int64_t tokens, d_model, num_experts;
};

constexpr int kForms = 6;
const char* const kFormNames[kForms] = {"xW1", "hW2", "dYW2t", "dHW1t", "htdY", "xtdH"};

// The operands of one product's rows and weights, made before timing (views only).
struct Operands {
  at::Tensor x, h, dy, w1, w2, out_h, out_d, gw1, gw2;
};

void Product(int f, Operands& o) {
  switch (f) {
    case 0:
      at::mm_out(o.out_h, o.x, o.w1);
      break;
    case 1:
      at::mm_out(o.out_d, o.h, o.w2);
      break;
    case 2:
      at::mm_out(o.out_h, o.dy, o.w2.t());
      break;
    case 3:
      at::mm_out(o.out_d, o.h, o.w1.t());
      break;
    case 4:
      at::mm_out(o.gw2, o.h.t(), o.dy);
      break;
    default:
      at::mm_out(o.gw1, o.x.t(), o.h);
      break;
  }
}

void RunGemm(benchmark::State& state, const BenchConfig& config, GemmShape s) {
  const int64_t t = s.tokens, d = s.d_model, hid = 4 * s.d_model, e = s.num_experts;
  const int64_t rows = t / e;
  at::manual_seed(3);
  const at::Tensor x = at::randn({t, d}), h = at::randn({t, hid}), dy = at::randn({t, d});
  const at::Tensor w1 = at::randn({e, d, hid}), w2 = at::randn({e, hid, d});
  at::Tensor out_h = at::empty({t, hid}), out_d = at::empty({t, d});
  at::Tensor gw1 = at::empty({e, d, hid}), gw2 = at::empty({e, hid, d});
  auto operands = [&](int64_t r0, int64_t n, int64_t i) {
    return Operands{x.narrow(0, r0, n),
                    h.narrow(0, r0, n),
                    dy.narrow(0, r0, n),
                    w1[i],
                    w2[i],
                    out_h.narrow(0, r0, n),
                    out_d.narrow(0, r0, n),
                    gw1[i],
                    gw2[i]};
  };
  std::vector<Operands> parts;
  for (int64_t i = 0; i < e; ++i) parts.push_back(operands(i * rows, rows, i));
  Operands all = operands(0, t, 0);
  const OneThreadScope blas(OneThreadScope::Knob::kOpenBlas);
  const OneThreadScope omp(OneThreadScope::Knob::kOpenMp);
  auto split = [&](int f) {
    for (Operands& o : parts) Product(f, o);
  };
  auto whole = [&](int f) { Product(f, all); };
  std::vector<std::vector<double>> split_ms(kForms), whole_ms(kForms);
  auto measure = [&](bool keep) {
    double total = 0;
    for (int f = 0; f < kForms; ++f) {
      // Alternated per form, so that a slow moment of the machine hits both sides alike.
      const double a = TimedMs(config, [&] { split(f); });
      const double b = TimedMs(config, [&] { whole(f); });
      if (keep) {
        split_ms[f].push_back(a);
        whole_ms[f].push_back(b);
      }
      total += a + b;
    }
    return total;
  };
  for (int i = 0; i < config.warmup; ++i) measure(false);
  for (auto _ : state) state.SetIterationTime(measure(true) / 1000.0);
  double split_sum = 0, whole_sum = 0;
  for (int f = 0; f < kForms; ++f) {
    const double a = Median(split_ms[f]), b = Median(whole_ms[f]);
    split_sum += a;
    whole_sum += b;
    state.counters[std::string("ratio_") + kFormNames[f]] = a / b;
  }
  const double flops = kForms * 2.0 * static_cast<double>(t * d * hid);
  state.counters["split_ms"] = split_sum;
  state.counters["whole_ms"] = whole_sum;
  state.counters["ratio"] = split_sum / whole_sum;
  state.counters["split_gflops"] = flops / split_sum / 1e6;
  state.counters["whole_gflops"] = flops / whole_sum / 1e6;
  state.counters["rows_per_expert"] = static_cast<double>(rows);
}

}  // namespace

void RegisterGemmBenchmarks(const BenchConfig& config) {
  if (!config.device.is_cpu() || !CanPinCpuThreads()) return;  // one-thread OpenBLAS GEMMs
  std::vector<GemmShape> shapes;
  if (config.smoke) {
    shapes = {{256, 64, 4}};
  } else {
    for (int64_t d : {256, 512}) {
      for (int64_t e : {4, 16}) shapes.push_back({2048, d, e});
    }
  }
  for (const GemmShape& s : shapes) {
    const std::string name = "ExpertGemm/T:" + std::to_string(s.tokens) +
                             "/d:" + std::to_string(s.d_model) +
                             "/E:" + std::to_string(s.num_experts);
    benchmark::RegisterBenchmark(name.c_str(),
                                 [config, s](benchmark::State& st) { RunGemm(st, config, s); })
        ->Iterations(config.iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace moebench::bench
