#include "harness/moe/dispatch.h"

#include <algorithm>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "harness/torch_compat.h"

namespace moebench {

namespace {

// Note [Row scatter kernels]: ATen's index_add on dim 0 walks the index serially and the
// composite combine (zeros, mul, index_add; backward index_select, mul, mul, sum) makes ~8 passes
// over [A, d]. These CPU kernels do the scatter in one pass, split over columns so threads never
// write the same element (duplicate indices are safe), and the combine's backward in one pass
// over assignments. Other devices and dtypes take the ATen composite path.
bool UseRowKernels(const at::Tensor& rows) {
  return rows.device().is_cpu() &&
         (rows.scalar_type() == at::kFloat || rows.scalar_type() == at::kDouble);
}

// Columns per task: whole cache lines, and enough work per task to be worth a thread.
constexpr int64_t kColumnGrain = 64;

// out[index[a], :] += scale[a] * src[a, :] (scale undefined: 1). out, src contiguous, same dtype.
void ScatterAddRows(at::Tensor& out, const at::Tensor& src, const at::Tensor& index,
                    const at::Tensor& scale) {
  const int64_t a_count = src.size(0);
  const int64_t d = src.size(1);
  const at::Tensor idx = index.to(at::kLong).contiguous();
  const int64_t* ip = idx.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "ScatterAddRows", [&] {
    const at::Tensor sc = scale.defined() ? scale.to(src.scalar_type()).contiguous() : at::Tensor();
    const scalar_t* sp = sc.defined() ? sc.data_ptr<scalar_t>() : nullptr;
    const scalar_t* xp = src.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, d, kColumnGrain, [&](int64_t c0, int64_t c1) {
      for (int64_t a = 0; a < a_count; ++a) {
        const scalar_t w = sp ? sp[a] : scalar_t(1);
        const scalar_t* s = xp + a * d;
        scalar_t* o = op + ip[a] * d;
        for (int64_t c = c0; c < c1; ++c) o[c] += w * s[c];
      }
    });
  });
}

class GatherRowsFunction : public torch::autograd::Function<GatherRowsFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& index) {
    ctx->saved_data["rows"] = x.size(0);
    ctx->save_for_backward({index});
    return x.index_select(0, index);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor index = ctx->get_saved_variables()[0];
    const at::Tensor g = grads[0].contiguous();
    at::Tensor gx = at::zeros({ctx->saved_data["rows"].toInt(), g.size(1)}, g.options());
    ScatterAddRows(gx, g, index, at::Tensor());
    return {gx, at::Tensor()};
  }
};

class CombineRowsFunction : public torch::autograd::Function<CombineRowsFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& rows,
                            const at::Tensor& weight, const at::Tensor& token, int64_t num_tokens) {
    const at::Tensor r = rows.contiguous();
    at::Tensor y = at::zeros({num_tokens, r.size(1)}, r.options());
    ScatterAddRows(y, r, token, weight);
    ctx->save_for_backward({r, weight, token});
    return y;
  }

  // grad_rows[a] = weight[a] * gy[token[a]], grad_weight[a] = <gy[token[a]], rows[a]>: one
  // pass over the assignments.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const at::Tensor& rows = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor idx = saved[2].to(at::kLong).contiguous();
    const at::Tensor gy = grads[0].contiguous();
    const bool need_rows = ctx->needs_input_grad(0);
    const bool need_weight = ctx->needs_input_grad(1);
    const int64_t a_count = rows.size(0);
    const int64_t d = rows.size(1);
    at::Tensor g_rows = need_rows ? at::empty_like(rows) : at::Tensor();
    at::Tensor g_weight = at::empty({a_count}, rows.options().dtype(at::kDouble));
    const int64_t* ip = idx.data_ptr<int64_t>();
    double* gwp = g_weight.data_ptr<double>();
    AT_DISPATCH_FLOATING_TYPES(rows.scalar_type(), "CombineRowsBackward", [&] {
      const at::Tensor w = weight.to(rows.scalar_type()).contiguous();
      const scalar_t* wp = w.data_ptr<scalar_t>();
      const scalar_t* rp = rows.data_ptr<scalar_t>();
      const scalar_t* gp = gy.data_ptr<scalar_t>();
      scalar_t* grp = need_rows ? g_rows.data_ptr<scalar_t>() : nullptr;
      const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(d, 1));
      at::parallel_for(0, a_count, grain, [&](int64_t a0, int64_t a1) {
        for (int64_t a = a0; a < a1; ++a) {
          const scalar_t* g = gp + ip[a] * d;
          const scalar_t* r = rp + a * d;
          double dot = 0;
          if (grp != nullptr) {
            scalar_t* o = grp + a * d;
            const scalar_t wa = wp[a];
            for (int64_t c = 0; c < d; ++c) o[c] = wa * g[c];
          }
          if (need_weight) {
            // Independent partial sums: the loop pipelines (and vectorises) instead of waiting
            // on one accumulator.
            constexpr int kLanes = 8;
            scalar_t acc[kLanes] = {};
            int64_t c = 0;
            for (; c + kLanes <= d; c += kLanes) {
              for (int j = 0; j < kLanes; ++j) acc[j] += g[c + j] * r[c + j];
            }
            for (; c < d; ++c) acc[0] += g[c] * r[c];
            for (int j = 0; j < kLanes; ++j) dot += static_cast<double>(acc[j]);
          }
          gwp[a] = dot;
        }
      });
    });
    return {g_rows, need_weight ? g_weight.to(weight.scalar_type()) : at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

ExpertOrder GroupByExpert(const at::Tensor& expert, int64_t num_experts) {
  ExpertOrder out;
  out.order = compat::StableArgsort(expert);
  const at::Tensor counts = at::bincount(expert, /*weights=*/{}, num_experts);
  const int64_t* c = counts.data_ptr<int64_t>();
  out.counts.assign(c, c + num_experts);
  return out;
}

at::Tensor GatherRows(const at::Tensor& x, const at::Tensor& index) {
  if (!UseRowKernels(x) || !x.requires_grad()) return x.index_select(0, index);
  return GatherRowsFunction::apply(x, index);
}

at::Tensor CombineRows(const at::Tensor& rows, const at::Tensor& token, const at::Tensor& weight,
                       int64_t num_tokens) {
  if (!UseRowKernels(rows)) {
    const at::Tensor w = weight.to(rows.scalar_type()).unsqueeze(1);
    return at::zeros({num_tokens, rows.size(1)}, rows.options()).index_add(0, token, rows * w);
  }
  return CombineRowsFunction::apply(rows, weight, token, num_tokens);
}

at::Tensor IndexDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                const at::Tensor& expert, const at::Tensor& weight,
                                const Experts& experts) {
  return IndexDispatchCombine(x, token, expert, weight, experts.num_experts(),
                              [&](const at::Tensor& rows, const std::vector<int64_t>& counts) {
                                return experts.ForwardGrouped(rows, counts);
                              });
}

at::Tensor IndexDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                const at::Tensor& expert, const at::Tensor& weight,
                                int64_t num_experts, const GroupedExpertFn& experts) {
  const ExpertOrder grouped = GroupByExpert(expert, num_experts);
  const at::Tensor tok = token.index_select(0, grouped.order);
  const at::Tensor out = experts(GatherRows(x, tok), grouped.counts);
  return CombineRows(out, tok, weight.index_select(0, grouped.order), x.size(0));
}

at::Tensor EinsumDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                 const at::Tensor& expert, const at::Tensor& slot,
                                 const at::Tensor& weight, int64_t capacity,
                                 const Experts& experts) {
  return EinsumDispatchCombine(
      x, token, expert, slot, weight, capacity, experts.num_experts(),
      [&](const at::Tensor& expert_in) { return experts.ForwardBatched(expert_in); });
}

at::Tensor EinsumDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                 const at::Tensor& expert, const at::Tensor& slot,
                                 const at::Tensor& weight, int64_t capacity, int64_t num_experts,
                                 const BatchedExpertFn& experts) {
  const int64_t t = x.size(0);
  const int64_t e = num_experts;
  const at::Tensor flat = (token * e + expert) * capacity + slot;
  const at::Tensor dispatch =
      at::zeros({t * e * capacity}, x.options()).index_fill(0, flat, 1.0).view({t, e, capacity});
  const at::Tensor combine = at::zeros({t * e * capacity}, weight.options())
                                 .index_put({flat}, weight)
                                 .view({t, e, capacity})
                                 .to(x.scalar_type());
  const at::Tensor expert_in = at::einsum("tec,td->ecd", {dispatch, x});
  const at::Tensor expert_out = experts(expert_in);
  return at::einsum("tec,ecd->td", {combine, expert_out});
}

}  // namespace moebench
