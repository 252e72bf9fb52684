// Dispatch + combine, forward and backward: the index path (IndexDispatchCombine: stable sort by
// expert, row gather, weighted scatter-add) against the dense einsum oracle
// (EinsumDispatchCombine: [T, E, C] dispatch and combine tensors, two einsums) on the same top-1
// routing, capacity factor 1.25, timed alternately in one benchmark. Two forms:
//  - dispatch + combine alone (the expert step is the identity): index_ms, einsum_ms, speedup;
//  - with the experts (d -> 4d -> d) between them: index_ffn_ms, einsum_ffn_ms, speedup_ffn.
//    Both sides then share the expert GEMMs, which bound this ratio (Amdahl).
#include <functional>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include "bench/bench_registry.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/experts.h"
#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench::bench {

namespace {

struct DispatchShape {
  int64_t tokens, d_model, num_experts;
};

void RunIndexVsEinsum(benchmark::State& state, const BenchConfig& config, const std::string& name,
                      DispatchShape s) {
  at::manual_seed(2);
  Experts experts(s.num_experts, s.d_model, 4 * s.d_model);
  const std::vector<at::Tensor> params = experts.parameters();
  const int64_t capacity = ExpertCapacity(1.25, s.tokens, s.num_experts, 4);
  const Routing r = RouteTop1(at::randn({s.tokens, s.num_experts}), at::Tensor(), capacity,
                              SwitchOptions(), RouteContext());
  const at::Tensor weight = r.weight.detach().requires_grad_(true);
  const at::Tensor x = at::randn({s.tokens, s.d_model}).requires_grad_(true);
  const at::Tensor grad_out = at::randn({s.tokens, s.d_model});

  auto identity_grouped = [](const at::Tensor& rows, const std::vector<int64_t>&) { return rows; };
  auto identity_batched = [](const at::Tensor& expert_in) { return expert_in; };
  auto timed = [&](const std::function<at::Tensor()>& forward) {
    ClearGrads(params);
    ClearGrads({x, weight});
    const double t0 = NowMs();
    forward().backward(grad_out);
    return NowMs() - t0;
  };
  auto index_step = [&] {
    return timed([&] {
      return IndexDispatchCombine(x, r.token, r.expert, weight, s.num_experts, identity_grouped);
    });
  };
  auto einsum_step = [&] {
    return timed([&] {
      return EinsumDispatchCombine(x, r.token, r.expert, r.slot, weight, capacity, s.num_experts,
                                   identity_batched);
    });
  };
  auto index_ffn_step = [&] {
    return timed([&] { return IndexDispatchCombine(x, r.token, r.expert, weight, experts); });
  };
  auto einsum_ffn_step = [&] {
    return timed([&] {
      return EinsumDispatchCombine(x, r.token, r.expert, r.slot, weight, capacity, experts);
    });
  };

  for (int i = 0; i < config.warmup; ++i) {
    index_step();
    einsum_step();
    index_ffn_step();
    einsum_ffn_step();
  }
  std::vector<double> index_ms, einsum_ms, index_ffn_ms, einsum_ffn_ms;
  for (auto _ : state) {
    const double a = index_step();
    const double b = einsum_step();
    const double c = index_ffn_step();
    const double d = einsum_ffn_step();
    index_ms.push_back(a);
    einsum_ms.push_back(b);
    index_ffn_ms.push_back(c);
    einsum_ffn_ms.push_back(d);
    state.SetIterationTime((a + b + c + d) / 1000.0);
  }
  ProfileStep(config, name, "index", index_step);
  ProfileStep(config, name, "einsum", einsum_step);
  state.counters["index_ms"] = Median(index_ms);
  state.counters["einsum_ms"] = Median(einsum_ms);
  state.counters["speedup"] = Median(einsum_ms) / Median(index_ms);
  state.counters["index_ffn_ms"] = Median(index_ffn_ms);
  state.counters["einsum_ffn_ms"] = Median(einsum_ffn_ms);
  state.counters["speedup_ffn"] = Median(einsum_ffn_ms) / Median(index_ffn_ms);
}

}  // namespace

void RegisterDispatchBenchmarks(const BenchConfig& config) {
  // The oracle's cost is quadratic in T (a [T, E, C] tensor per direction): one large shape.
  const std::vector<DispatchShape> shapes =
      config.smoke ? std::vector<DispatchShape>{{256, 64, 4}}
                   : std::vector<DispatchShape>{
                         {2048, 512, 4}, {2048, 512, 8}, {2048, 512, 16}, {8192, 512, 16}};
  for (const DispatchShape& s : shapes) {
    const std::string name = "Dispatch/T:" + std::to_string(s.tokens) +
                             "/d:" + std::to_string(s.d_model) +
                             "/E:" + std::to_string(s.num_experts);
    benchmark::RegisterBenchmark(
        name.c_str(),
        [config, name, s](benchmark::State& st) { RunIndexVsEinsum(st, config, name, s); })
        ->Iterations(config.iterations)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace moebench::bench
