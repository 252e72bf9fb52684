#include "harness/moe/experts.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/autograd.h>

#include "harness/autocast.h"
#include "harness/moe/cpu_threads.h"
#include "harness/torch_compat.h"
#include "methods/routing_util.h"

#ifdef MOEBENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace moebench {

namespace {

// Columns per task in the fused kernel below: whole cache lines per thread.
constexpr int64_t kColumnGrain = 64;

// Note [Experts in parallel]: on the CPU with two or more intra-op threads the experts run
// concurrently, one per thread (largest first, taken from a shared counter), each GEMM with
// OpenBLAS at one thread, instead of one after another with OpenBLAS splitting each GEMM over
// every thread. Two single-threaded GEMMs of ~128-1024 rows keep both cores busier than one
// two-threaded GEMM of that size: at T 2048, d 256, E 16 (128 rows per expert) the experts'
// forward + backward takes 39 ms concurrently against 46-48 ms serially (a dense FFN of the
// same FLOPs: 35-39 ms), and the layer's ratio to the dense FFN drops at every shape of the
// benchmark matrix (bench/README.md). Results are the same (each expert's GEMMs are the same
// calls, on one thread).
// Until 2026-11-24 this schedule measured slower than the serial one and was off by default,
// for two reasons: at::parallel_for as the runner (its second thread barely overlapped), then
// helper threads started per call (a fresh thread's first ATen op re-runs ATen's thread-count
// initialisation, which recreates the process-wide pthreadpool, whose new workers spin: 20% of
// a perf profile's samples; it also slowed the dense FFN measured next to it). The helpers are
// now started once (HelperThreads), and every worker runs its OpenMP teams at one thread while
// the experts run, so that the elementwise ops inside an expert (relu's backward, bias sums)
// do not start teams of two from both threads at once. MOEBENCH_EXPERT_PARALLEL=0 forces the
// serial schedule for A/B measurements. Needs OpenBLAS found at run time
// (openblas_set_num_threads) and OpenMP's omp_set_num_threads; otherwise serial.

struct ExpertSegment {
  int64_t expert, offset, rows;
};

std::vector<ExpertSegment> Segments(const std::vector<int64_t>& counts) {
  std::vector<ExpertSegment> segs;
  int64_t offset = 0;
  for (int64_t e = 0; e < static_cast<int64_t>(counts.size()); ++e) {
    if (counts[e] > 0) segs.push_back({e, offset, counts[e]});
    offset += counts[e];
  }
  return segs;
}

bool ConcurrentOn(const at::Device& device) {
  if (!device.is_cpu() || at::get_num_threads() < 2 || !CanPinCpuThreads()) return false;
  const char* forced = std::getenv("MOEBENCH_EXPERT_PARALLEL");
  return forced == nullptr || forced[0] != '0';
}

bool RunExpertsInParallel(const at::Tensor& x, const std::vector<ExpertSegment>& segs) {
  return segs.size() >= 2 && ConcurrentOn(x.device());
}

// Calls fn(segment) for every segment: serially, or per Note [Experts in parallel].
void ForEachExpert(const at::Tensor& x, std::vector<ExpertSegment> segs,
                   const std::function<void(const ExpertSegment&)>& fn) {
  if (!RunExpertsInParallel(x, segs)) {
    for (const ExpertSegment& s : segs) fn(s);
    return;
  }
  std::sort(segs.begin(), segs.end(),
            [](const ExpertSegment& a, const ExpertSegment& b) { return a.rows > b.rows; });
  const int helpers = at::get_num_threads() - 1;
  OneThreadScope blas(OneThreadScope::Knob::kOpenBlas);
  OneThreadScope omp(OneThreadScope::Knob::kOpenMp);
  std::atomic<size_t> next{0};
  // The helpers run with the caller's thread-local state (grad mode, ...), as ATen's own tasks
  // do.
  const at::ThreadLocalState state;
  HelperThreads::Get(helpers).Run(helpers, [&] {
    at::ThreadLocalStateGuard guard(state);
    for (size_t i = next++; i < segs.size(); i = next++) fn(segs[i]);
  });
}

// With h: dh = dh * (h > 0) in place (relu's backward, from relu's output) and, if gb is given,
// gb = column sums of the result. Without h: gb = column sums of dh. One pass over dh instead of
// two, split over columns (CPU float/double; the ATen ops elsewhere).
void MaskAndColumnSum(at::Tensor& dh, const at::Tensor& h, at::Tensor* gb) {
  const bool fused = dh.device().is_cpu() && dh.is_contiguous() &&
                     (!h.defined() || h.is_contiguous()) &&
                     (dh.scalar_type() == at::kFloat || dh.scalar_type() == at::kDouble);
  if (!fused) {
    if (h.defined()) at::threshold_backward_out(dh, dh, h, 0);
    if (gb != nullptr) at::sum_out(*gb, dh, {0});
    return;
  }
  const int64_t rows = dh.size(0);
  const int64_t cols = dh.size(1);
  AT_DISPATCH_FLOATING_TYPES(dh.scalar_type(), "MaskAndColumnSum", [&] {
    scalar_t* dp = dh.data_ptr<scalar_t>();
    const scalar_t* hp = h.defined() ? h.data_ptr<scalar_t>() : nullptr;
    scalar_t* gp = gb != nullptr ? gb->data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, cols, kColumnGrain, [&](int64_t c0, int64_t c1) {
      std::vector<scalar_t> acc(c1 - c0, scalar_t(0));
      scalar_t* a = acc.data() - c0;
      for (int64_t r = 0; r < rows; ++r) {
        scalar_t* d_row = dp + r * cols;
        if (hp != nullptr) {
          const scalar_t* h_row = hp + r * cols;
          for (int64_t c = c0; c < c1; ++c) {
            const scalar_t v = h_row[c] > scalar_t(0) ? d_row[c] : scalar_t(0);
            d_row[c] = v;
            a[c] += v;
          }
        } else {
          for (int64_t c = c0; c < c1; ++c) a[c] += d_row[c];
        }
      }
      if (gp != nullptr) {
        for (int64_t c = c0; c < c1; ++c) gp[c] = a[c];
      }
    });
  });
}

// Note [Grouped experts backward]
// All experts' FFNs over rows grouped by expert are one autograd function. Indexing the weight
// stacks per expert (w1[e], b1[e], ...) under autograd would make one zero-filled gradient of
// the whole [E, d, h] stack per expert (select_backward) and add them up: O(E^2 d h) memory
// traffic. Instead the forward writes every expert's output into one preallocated buffer (no
// cat) and saves the ReLU output; the backward writes each expert's weight and bias gradients
// straight into its slice of one gradient tensor (mm_out), with ReLU's mask and the bias
// gradient's column sum fused in one pass (MaskAndColumnSum). Only experts that got no rows
// leave their slices at zero, so the gradients are zero-filled only when such an expert exists.
class GroupedFfnFunction : public torch::autograd::Function<GroupedFfnFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                            const at::Tensor& b2, const std::vector<int64_t>& counts) {
    const int64_t n = x.size(0);
    at::Tensor hidden = at::empty({n, w1.size(2)}, x.options());
    at::Tensor y = at::empty({n, w2.size(2)}, x.options());
    ForEachExpert(x, Segments(counts), [&](const ExpertSegment& s) {
      at::Tensor h_e = hidden.narrow(0, s.offset, s.rows);
      at::Tensor y_e = y.narrow(0, s.offset, s.rows);
      at::addmm_out(h_e, b1[s.expert], x.narrow(0, s.offset, s.rows), w1[s.expert]);
      h_e.relu_();
      at::addmm_out(y_e, b2[s.expert], h_e, w2[s.expert]);
    });
    ctx->save_for_backward({x, w1, w2, hidden});
    ctx->saved_data["counts"] = counts;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w1 = saved[1];
    const at::Tensor& w2 = saved[2];
    const at::Tensor& hidden = saved[3];
    const std::vector<int64_t> counts = ctx->saved_data["counts"].toIntVector();
    const at::Tensor gy = grads[0].contiguous();
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_params = ctx->needs_input_grad(1) || ctx->needs_input_grad(2) ||
                             ctx->needs_input_grad(3) || ctx->needs_input_grad(4);

    bool any_empty = false;
    for (int64_t c : counts) any_empty = any_empty || c == 0;
    // Every row of every non-empty expert is written below; only empty experts need zeros.
    auto param_grad = [&](const at::Tensor& p) {
      if (!need_params) return at::Tensor();
      return any_empty ? at::zeros_like(p) : at::empty_like(p);
    };
    at::Tensor gw1 = param_grad(w1), gw2 = param_grad(w2);
    at::Tensor gb1 =
        need_params ? param_grad(at::empty({w1.size(0), w1.size(2)}, w1.options())) : at::Tensor();
    at::Tensor gb2 =
        need_params ? param_grad(at::empty({w2.size(0), w2.size(2)}, w2.options())) : at::Tensor();
    at::Tensor gx = need_x ? at::empty_like(x) : at::Tensor();
    at::Tensor dh = at::empty_like(hidden);
    ForEachExpert(x, Segments(counts), [&](const ExpertSegment& s) {
      const int64_t e = s.expert;
      const at::Tensor gy_e = gy.narrow(0, s.offset, s.rows);
      const at::Tensor h_e = hidden.narrow(0, s.offset, s.rows);
      at::Tensor dh_e = dh.narrow(0, s.offset, s.rows);
      if (need_params) {
        at::Tensor gw2_e = gw2[e], gb2_e = gb2[e];
        at::mm_out(gw2_e, h_e.t(), gy_e);
        at::Tensor gy_rows = gy_e;  // read only: no mask
        MaskAndColumnSum(gy_rows, at::Tensor(), &gb2_e);
      }
      at::mm_out(dh_e, gy_e, w2[e].t());
      at::Tensor gb1_e = need_params ? gb1[e] : at::Tensor();
      // relu's mask comes from its output (saved); the bias gradient rides along.
      MaskAndColumnSum(dh_e, h_e, need_params ? &gb1_e : nullptr);
      if (need_params) {
        at::Tensor gw1_e = gw1[e];
        at::mm_out(gw1_e, x.narrow(0, s.offset, s.rows).t(), dh_e);
      }
      if (need_x) {
        at::Tensor gx_e = gx.narrow(0, s.offset, s.rows);
        at::mm_out(gx_e, dh_e, w1[e].t());
      }
    });
    return {gx, gw1, gb1, gw2, gb2, at::Tensor()};
  }
};

}  // namespace

// Note [Grouped GEMM experts]
// On a GPU the per-expert loop launches 2 GEMMs per expert forward and 4-5 backward, each small
// (T / E rows): E = 8-64 launches where one kernel would do. LibTorch 2.9+ has at::_grouped_mm:
// a [N, k] with rows grouped, b [E, k, n], the groups' row ends as an int32 tensor on the
// device; on sm90 and sm100 in bf16 one CUTLASS kernel without reading the ends on the host,
// and differentiable (its backward is grouped GEMMs too). The experts' FFN is then two of them,
// with the biases added per row (b[e] gathered by each row's expert, which autograd sums back,
// in fp32) and ReLU between: ForwardGroupedMm. ForwardGrouped takes this path for rows in bf16
// on a CUDA device of compute capability 9 or 10 when the widths are multiples of 8 (16-byte
// strides, as the kernel needs; every size preset's are), unless MOEBENCH_GROUPED_MM=0 (for
// A/B measurements); elsewhere LibTorch's own fallback would read the ends on the host, so the
// loop (GroupedFfnFunction) runs. Without the library's kernel (LibTorch 1.x, the CPU)
// ForwardGroupedMm runs each grouped GEMM as one mm per expert, so the CPU tests check everything
// around the kernel against GroupedFfnFunction: outputs, the five gradients, empty experts.

namespace {

// Whether experts of these widths, on rows in `dt` on `device`, take the library's grouped GEMM.
bool GroupedMmChosen(const at::Device& device, at::ScalarType dt, int64_t d_model,
                     int64_t d_hidden) {
  if (!compat::kHaveGroupedMm || !device.is_cuda() || dt != at::kBFloat16) return false;
  if (d_model % 8 != 0 || d_hidden % 8 != 0) return false;
#ifdef MOEBENCH_CUDA
  // Its kernel runs on sm90 and sm100; elsewhere LibTorch loops over the groups after copying
  // their ends to the host, a wait per GEMM that the loop below does not have.
  const int major = at::cuda::getDeviceProperties(device.index())->major;
  if (major != 9 && major != 10) return false;
#endif
  const char* forced = std::getenv("MOEBENCH_GROUPED_MM");
  return forced == nullptr || forced[0] != '0';
}

// a's rows, counts[e] for group e, times b[e]: one mm per group (empty groups give no rows).
at::Tensor GroupedMmByLoop(const at::Tensor& a, const at::Tensor& b,
                           const std::vector<int64_t>& counts) {
  std::vector<at::Tensor> parts;
  int64_t offset = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    parts.push_back(at::mm(a.narrow(0, offset, counts[e]), b[static_cast<int64_t>(e)]));
    offset += counts[e];
  }
  return at::cat(parts, 0);
}

}  // namespace

std::string ExpertSchedule(const at::Device& device, at::ScalarType dtype, int64_t d_model,
                           int64_t d_hidden) {
  if (GroupedMmChosen(device, dtype, d_model, d_hidden)) return "grouped_mm";
  return ConcurrentOn(device) ? "concurrent" : "serial";
}

at::Tensor Experts::ForwardGroupedMm(const at::Tensor& x, const std::vector<int64_t>& counts,
                                     bool library) const {
  const at::ScalarType dt = MatmulDtype(x);
  const at::Tensor xs = x.to(dt).contiguous();
  const at::Tensor w1c = CastWeight(w1, dt), w2c = CastWeight(w2, dt);
  // Each row's expert, for its biases: made on the host from the counts and copied once.
  std::vector<int64_t> expert_of_row;
  expert_of_row.reserve(static_cast<size_t>(xs.size(0)));
  for (size_t e = 0; e < counts.size(); ++e) {
    expert_of_row.insert(expert_of_row.end(), static_cast<size_t>(counts[e]),
                         static_cast<int64_t>(e));
  }
  const at::Tensor rows_expert = OnDeviceOf(at::tensor(expert_of_row, at::kLong), xs);
  at::Tensor offs;  // the groups' row ends, for the library's kernel
  if (library) {
    std::vector<int32_t> ends;
    int64_t end = 0;
    for (int64_t c : counts) ends.push_back(static_cast<int32_t>(end += c));
    offs = OnDeviceOf(at::tensor(ends, at::kInt), xs);
  }
  auto gemm = [&](const at::Tensor& a, const at::Tensor& b) {
    return library ? compat::GroupedMm(a, b, offs) : GroupedMmByLoop(a, b, counts);
  };
  // The biases gathered in their own dtype, then cast: their gradients are sums over each
  // expert's rows, which index_select's backward then adds in fp32 (as the loop's column sums
  // do), not in bf16, where a few thousand rows lose the small terms.
  auto bias = [&](const at::Tensor& b) { return b.index_select(0, rows_expert).to(dt); };
  const at::Tensor h = (gemm(xs, w1c) + bias(b1)).relu();
  return gemm(h, w2c) + bias(b2);
}

Experts::Experts(int64_t num_experts, int64_t d_model, int64_t d_hidden)
    : num_experts_(num_experts), d_model_(d_model), d_hidden_(d_hidden) {
  // nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  const double a1 = 1.0 / std::sqrt(static_cast<double>(d_model));
  const double a2 = 1.0 / std::sqrt(static_cast<double>(d_hidden));
  w1 = register_parameter("w1", at::empty({num_experts, d_model, d_hidden}).uniform_(-a1, a1));
  b1 = register_parameter("b1", at::empty({num_experts, d_hidden}).uniform_(-a1, a1));
  w2 = register_parameter("w2", at::empty({num_experts, d_hidden, d_model}).uniform_(-a2, a2));
  b2 = register_parameter("b2", at::empty({num_experts, d_model}).uniform_(-a2, a2));
}

Experts::Experts(at::Tensor w1_in, at::Tensor b1_in, at::Tensor w2_in, at::Tensor b2_in)
    : num_experts_(w1_in.size(0)), d_model_(w1_in.size(1)), d_hidden_(w1_in.size(2)) {
  if (b1_in.sizes() != at::IntArrayRef{num_experts_, d_hidden_} ||
      w2_in.sizes() != at::IntArrayRef{num_experts_, d_hidden_, d_model_} ||
      b2_in.sizes() != at::IntArrayRef{num_experts_, d_model_}) {
    throw std::invalid_argument("Experts: weight shapes do not agree");
  }
  w1 = register_parameter("w1", w1_in);
  b1 = register_parameter("b1", b1_in);
  w2 = register_parameter("w2", w2_in);
  b2 = register_parameter("b2", b2_in);
}

at::Tensor Experts::ForwardOne(int64_t e, const at::Tensor& x) const {
  at::Tensor h = at::addmm(b1[e], x, w1[e]).relu_();
  return at::addmm(b2[e], h, w2[e]);
}

at::Tensor Experts::ForwardGrouped(const at::Tensor& x, const std::vector<int64_t>& counts) const {
  if (static_cast<int64_t>(counts.size()) != num_experts_) {
    throw std::invalid_argument("Experts::ForwardGrouped: " + std::to_string(counts.size()) +
                                " counts for " + std::to_string(num_experts_) + " experts");
  }
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total != x.size(0)) {
    throw std::invalid_argument("Experts::ForwardGrouped: counts add up to " +
                                std::to_string(total) + " rows, x has " +
                                std::to_string(x.size(0)));
  }
  // Under autocast (Note [Device and precision]) the grouped function runs wholly in the
  // autocast dtype: its out= GEMMs are not autocast themselves. The casts are differentiable,
  // so the fp32 weights get fp32 gradients.
  const at::ScalarType dt = MatmulDtype(x);
  // No rows (a rank whose experts got no token: THOR's batch draw sends every token to one
  // expert): an empty output that still hangs off x in the graph, so that this rank's
  // backward reaches the exchange before it and joins the other ranks' all-to-all.
  if (total == 0) return x.to(dt).clone();
  if (GroupedMmChosen(x.device(), dt, d_model_, d_hidden_)) {
    return ForwardGroupedMm(x, counts, /*library=*/true);
  }
  if (dt != w1.scalar_type()) {
    return GroupedFfnFunction::apply(x.to(dt).contiguous(), CastWeight(w1, dt), CastWeight(b1, dt),
                                     CastWeight(w2, dt), CastWeight(b2, dt), counts);
  }
  return GroupedFfnFunction::apply(x.to(dt).contiguous(), w1, b1, w2, b2, counts);
}

at::Tensor Experts::ForwardBatched(const at::Tensor& x) const {
  // In the autocast dtype, the weights through the step's cast cache (as ForwardGrouped).
  const at::ScalarType dt = MatmulDtype(x);
  at::Tensor h = at::baddbmm(CastWeight(b1, dt).unsqueeze(1), x.to(dt), CastWeight(w1, dt)).relu_();
  return at::baddbmm(CastWeight(b2, dt).unsqueeze(1), h, CastWeight(w2, dt));
}

}  // namespace moebench
