#include "bench/bench_util.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#ifdef MOEBENCH_CUDA
#include <fstream>
#include <map>

#include <torch/csrc/autograd/profiler_kineto.h>
#endif
#include <torch/cuda.h>

#include "harness/moe/cpu_threads.h"
#include "harness/moe/experts.h"
#include "harness/torch_compat.h"
#include "harness/train/device.h"
#include "harness/train/device_peak.h"
#include "harness/util/blas_info.h"
#include "harness/util/process.h"
#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench::bench {

namespace {

// docs/PERFORMANCE.md "Method": every reference number was taken with these.
struct EnvSetting {
  const char* name;
  const char* value;
};
constexpr EnvSetting kBenchEnvironment[] = {
    {"OMP_WAIT_POLICY", "PASSIVE"},
    {"OPENBLAS_THREAD_TIMEOUT", "4"},
    {"MALLOC_MMAP_MAX_", "0"},
    {"MALLOC_TRIM_THRESHOLD_", "68719476736"},
};

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

}  // namespace

void EnsureBenchEnvironment(char** argv) {
  if (std::getenv("MOEBENCH_BENCH_ENV_READY") == nullptr) {
    setenv("MOEBENCH_BENCH_ENV_READY", "1", 1);
    for (const EnvSetting& s : kBenchEnvironment) setenv(s.name, s.value, /*overwrite=*/0);
    ReExecuteSelf(argv);  // returns only on failure: then go on as we are
  }
  // The same heap settings, in case the re-exec failed (harmless when the variables worked).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT32_MAX);
}

void RecordBenchContext(const BenchConfig& config) {
  for (const EnvSetting& s : kBenchEnvironment) {
    benchmark::AddCustomContext(s.name, EnvOr(s.name, "unset"));
  }
  // Kernel choice changes GEMM speed 2x here: compare only runs with the same core type.
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", EnvOr("OPENBLAS_CORETYPE", "unset"));
  const BlasInfo blas = DetectBlas();
  benchmark::AddCustomContext("blas_core", blas.core.empty() ? "unknown" : blas.core);
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  // Whether OpenBLAS and OpenMP can be pinned to one thread (the experts' concurrent schedule
  // and the ExpertGemm family need it; an MKL-linked LibTorch cannot).
  benchmark::AddCustomContext("one_thread_blas", CanPinCpuThreads() ? "yes" : "no");
  // Every benchmark's widths are multiples of 8 (ExpertSchedule's default).
  benchmark::AddCustomContext(
      "expert_schedule", ExpertSchedule(config.device, config.bf16 ? at::kBFloat16 : at::kFloat));
  benchmark::AddCustomContext("torch_version", compat::TorchVersion());
  benchmark::AddCustomContext("device", DeviceDescription(config.device));
  benchmark::AddCustomContext("precision", config.bf16 ? "bf16" : "fp32");
  // The peak MFU is taken against (Note [MFU]): a GPU's data sheet, else measured here.
  const DevicePeak peak = FindDevicePeak(config.device, config.bf16);
  benchmark::AddCustomContext("peak_tflops", std::to_string(peak.flops_per_s / 1e12));
  benchmark::AddCustomContext("peak_source", peak.source);
  benchmark::AddCustomContext("moebench_mode", config.smoke       ? "smoke"
                                               : config.long_mode ? "long"
                                                                  : "default");
  benchmark::AddCustomContext("moebench_steps", std::to_string(config.warmup) + " warm-up + " +
                                                    std::to_string(config.iterations) +
                                                    " measured (median)");
}

double TimedMs(const BenchConfig& config, const std::function<void()>& step) {
  const bool cuda = config.device.is_cuda();
  if (cuda) torch::cuda::synchronize();
  const double t0 = NowMs();
  step();
  if (cuda) torch::cuda::synchronize();
  return NowMs() - t0;
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

int64_t MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_minflt);
}

namespace {

// Note: one count at a time (a global callback, a global flag).
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_kernel_ops{0};

struct OpFrame : at::ObserverContext {
  bool has_child = false;
};
thread_local std::vector<OpFrame*> t_op_stack;

// Views, allocations and bookkeeping: no kernel of their own (the autograd engine's frames are
// counted through the ops they run).
bool NoKernel(const std::string& name) {
  if (name.rfind("autograd::", 0) == 0) return true;
  static const std::set<std::string> views = {"aten::view",
                                              "aten::_unsafe_view",
                                              "aten::reshape",
                                              "aten::_reshape_alias",
                                              "aten::narrow",
                                              "aten::slice",
                                              "aten::select",
                                              "aten::transpose",
                                              "aten::t",
                                              "aten::permute",
                                              "aten::expand",
                                              "aten::expand_as",
                                              "aten::unsqueeze",
                                              "aten::squeeze",
                                              "aten::as_strided",
                                              "aten::alias",
                                              "aten::detach",
                                              "aten::view_as",
                                              "aten::unbind",
                                              "aten::split",
                                              "aten::chunk",
                                              "aten::diagonal",
                                              "aten::resolve_conj",
                                              "aten::resolve_neg",
                                              "aten::empty",
                                              "aten::empty_like",
                                              "aten::empty_strided",
                                              "aten::lift_fresh",
                                              "aten::contiguous",
                                              "aten::to",
                                              "aten::_has_compatible_shallow_copy_type",
                                              "aten::set_",
                                              "aten::result_type",
                                              "aten::is_nonzero",
                                              "aten::flatten",
                                              "aten::numpy_T",
                                              "aten::movedim",
                                              "aten::resize_",
                                              "aten::unflatten",
                                              "detach"};
  return views.count(name) > 0;
}

std::unique_ptr<at::ObserverContext> OpStart(const at::RecordFunction& /*fn*/) {
  if (!g_counting.load(std::memory_order_relaxed)) return nullptr;
  if (!t_op_stack.empty()) t_op_stack.back()->has_child = true;
  auto frame = std::make_unique<OpFrame>();
  t_op_stack.push_back(frame.get());
  return frame;
}

void OpEnd(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  auto* frame = static_cast<OpFrame*>(ctx);
  if (frame == nullptr) return;
  if (!t_op_stack.empty() && t_op_stack.back() == frame) t_op_stack.pop_back();
  if (!frame->has_child && !NoKernel(fn.name())) ++g_kernel_ops;
}

}  // namespace

int64_t KernelOps(const std::function<void()>& step) {
  const at::CallbackHandle handle = at::addGlobalCallback(
      at::RecordFunctionCallback(&OpStart, &OpEnd).scopes({at::RecordScope::FUNCTION}));
  g_kernel_ops = 0;
  g_counting = true;
  step();
  g_counting = false;
  at::removeCallback(handle);
  return g_kernel_ops.load();
}

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

#ifdef MOEBENCH_CUDA
namespace {

// One step under the Kineto profiler (CPU ops and CUDA kernels): the chrome trace and a table
// of the device time per kernel and the host time per op, largest first.
void KinetoProfileStep(const std::string& path, const std::function<double()>& step) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const torch::profiler::impl::ProfilerConfig cfg(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<ActivityType> activities = {ActivityType::CPU, ActivityType::CUDA};
  prof::prepareProfiler(cfg, activities);
  prof::enableProfiler(cfg, activities);
  step();
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  result->save(path + ".json");
  std::map<std::string, std::pair<double, int>> kernels, ops;
  double kernel_total = 0;
  for (const auto& e : result->events()) {
    const bool on_device = e.deviceType() == c10::DeviceType::CUDA;
    auto& slot = (on_device ? kernels : ops)[e.name()];
#if MOEBENCH_TORCH_AT_LEAST(2, 0)
    const double ms = static_cast<double>(e.durationNs()) / 1e6;
#else
    const double ms = static_cast<double>(e.durationUs()) / 1e3;  // 1.13's KinetoEvent
#endif
    slot.first += ms;
    slot.second += 1;
    if (on_device) kernel_total += ms;
  }
  std::ofstream out(path + ".txt");
  auto table = [&out](const char* title, const std::map<std::string, std::pair<double, int>>& m) {
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [name, v] : m) {
      rows.push_back({v.first, name.substr(0, 90) + " x" + std::to_string(v.second)});
    }
    std::sort(rows.rbegin(), rows.rend());
    out << title << "\n";
    for (size_t i = 0; i < rows.size() && i < 25; ++i) {
      out << "  " << rows[i].first << " ms  " << rows[i].second << "\n";
    }
  };
  out << "device time in kernels: " << kernel_total << " ms\n";
  table("kernels (device ms, calls):", kernels);
  table("ops and runtime calls (host ms, inclusive, calls):", ops);
}

}  // namespace
#endif

void ProfileStep(const BenchConfig& config, const std::string& benchmark_name,
                 const std::string& part, const std::function<double()>& step) {
  if (config.profile_dir.empty()) return;
  std::string file = benchmark_name;
  for (char& c : file) {
    if (c == '/' || c == ':') c = '_';
  }
  const std::string path = config.profile_dir + "/" + file + "." + part;
#ifdef MOEBENCH_CUDA
  if (config.device.is_cuda()) {
    KinetoProfileStep(path, step);
    return;
  }
#endif
  torch::autograd::profiler::RecordProfile guard(path + ".json");
  step();
}

void ClearGrads(const std::vector<at::Tensor>& tensors) {
  for (const at::Tensor& t : tensors) {
    if (t.grad().defined()) t.mutable_grad() = at::Tensor();
  }
}

DenseFfn::DenseFfn(int64_t d_model, int64_t d_hidden, at::Device device) {
  // nn.Linear's initialisation, as the experts use (drawn on the CPU, then moved).
  const double a1 = 1.0 / std::sqrt(static_cast<double>(d_model));
  const double a2 = 1.0 / std::sqrt(static_cast<double>(d_hidden));
  auto param = [&](at::Tensor t) { return t.to(device).requires_grad_(true); };
  w1 = param(at::empty({d_model, d_hidden}).uniform_(-a1, a1));
  b1 = param(at::empty({d_hidden}).uniform_(-a1, a1));
  w2 = param(at::empty({d_hidden, d_model}).uniform_(-a2, a2));
  b2 = param(at::empty({d_model}).uniform_(-a2, a2));
}

at::Tensor DenseFfn::Forward(const at::Tensor& x) const {
  return at::addmm(b2, at::addmm(b1, x, w1).relu(), w2);
}

void DenseFfn::ClearGrads() { bench::ClearGrads({w1, b1, w2, b2}); }

Top2Router::Top2Router(int64_t d_model, int64_t num_experts, double capacity_factor)
    : num_experts_(num_experts), capacity_factor_(capacity_factor) {
  weight_ = register_parameter("weight", InitRouterWeight(d_model, num_experts));
}

Routing Top2Router::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& /*ctx*/) {
  const int64_t t = x.size(0);
  const int64_t e = num_experts_;
  const at::Tensor probs = at::softmax(x.to(at::kFloat).matmul(weight_), -1);
  const auto [top_p, top_i] = probs.topk(2, -1);
  const at::Tensor active =
      pad.defined() ? pad.to(at::kBool) : at::ones({t}, x.options().dtype(at::kBool));
  const at::Tensor first = top_i.select(1, 0).contiguous();
  const at::Tensor second = top_i.select(1, 1).contiguous();
  const int64_t capacity = ExpertCapacity(capacity_factor_, t, e, /*min_capacity=*/4);
  // First choices fill the buffers before any second choice (GShard).
  const at::Tensor pos1 = SlotsInOrder(first, active, e, at::Tensor());
  // Rows the first choices of real tokens put in each expert (no host read, unlike bincount).
  const at::Tensor used1 =
      at::zeros({e}, first.options()).index_add_(0, first, active.to(at::kLong));
  const at::Tensor pos2 = SlotsInOrder(second, active, e, used1);
  const at::Tensor norm = top_p.sum(-1).clamp_min(1e-9);
  const at::Tensor pos = at::cat({pos1, pos2});
  const at::Tensor expert = at::cat({first, second});
  const at::Tensor weight = at::cat({top_p.select(1, 0) / norm, top_p.select(1, 1) / norm});
  const at::Tensor keep = at::cat({active, active}) & (pos < capacity);
  const at::Tensor idx = keep.nonzero().squeeze(1);

  Routing r;
  r.token = idx.remainder(t);
  r.expert = expert.index_select(0, idx);
  r.slot = pos.index_select(0, idx);
  r.weight = weight.index_select(0, idx);
  r.capacity = capacity;
  r.probs = probs;
  r.choices = 2 * (pad.defined() ? active.sum().item<int64_t>() : t);
  r.dropped = r.choices - idx.size(0);
  r.losses.push_back({"aux", LoadBalanceLoss(probs, first, PadMask(pad, t, x.device())), 0.01});
  return r;
}

}  // namespace moebench::bench
