// Each registered routing method's router alone: Route() on one group of tokens in training
// mode (logits, top-k, capacity, aux losses), forward only; reports tokens/s. New methods in
// methods/registry.cpp are picked up without touching this file.
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_registry.h"
#include "methods/method.h"

namespace moebench::bench {

namespace {

struct RouterShape {
  int64_t tokens, d_model, num_experts;
};

void RunRouter(benchmark::State& state, const BenchConfig& config, const std::string& method,
               RouterShape s) {
  at::manual_seed(3);
  LayerSpec spec;
  spec.d_model = s.d_model;
  spec.d_ff = 4 * s.d_model;
  spec.num_experts = s.num_experts;
  spec.vocab = 1000;
  const std::unique_ptr<Method> m = MakeMethod(method, {});
  const std::shared_ptr<Router> router = m->MakeRouter(spec);
  router->to(config.device);
  router->train();
  const at::Tensor x = at::randn({s.tokens, s.d_model}).to(config.device);
  // Token ids for the methods that route by them (hash).
  const at::Tensor ids = at::randint(spec.vocab, {s.tokens}, at::kLong).to(config.device);
  int64_t step = 0;
  auto route = [&] {
    RouteContext ctx;
    ctx.training = true;
    ctx.step = ++step;
    ctx.token_ids = ids;
    return TimedMs(config, [&] { const Routing r = router->Route(x, at::Tensor(), ctx); });
  };
  for (int i = 0; i < config.warmup; ++i) route();
  std::vector<double> ms;
  for (auto _ : state) {
    ms.push_back(route());
    state.SetIterationTime(ms.back() / 1000.0);
  }
  const double med = Median(ms);
  state.counters["route_ms"] = med;
  state.counters["tokens_per_s"] = static_cast<double>(s.tokens) / (med / 1000.0);
}

}  // namespace

void RegisterRouterBenchmarks(const BenchConfig& config) {
  std::vector<RouterShape> shapes;
  if (config.smoke) {
    shapes = {{256, 64, 4}};
  } else {
    for (int64_t t : {2048, 8192}) {
      for (int64_t e : {8, 16}) shapes.push_back({t, 512, e});
    }
  }
  for (const MethodInfo& info : MethodRegistry()) {
    // The dense baseline has no router to time.
    if (MakeMethod(info.name, {})->DenseWidth(1, 1) > 0) continue;
    for (const RouterShape& s : shapes) {
      const std::string name = "Router/" + info.name + "/T:" + std::to_string(s.tokens) +
                               "/d:" + std::to_string(s.d_model) +
                               "/E:" + std::to_string(s.num_experts);
      const std::string method = info.name;
      benchmark::RegisterBenchmark(
          name.c_str(),
          [config, method, s](benchmark::State& st) { RunRouter(st, config, method, s); })
          ->Iterations(config.iterations)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace moebench::bench
