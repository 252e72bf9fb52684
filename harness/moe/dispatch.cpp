#include "harness/moe/dispatch.h"

#include "harness/torch_compat.h"

namespace moebench {

ExpertOrder GroupByExpert(const at::Tensor& expert, int64_t num_experts) {
  ExpertOrder out;
  out.order = compat::StableArgsort(expert);
  const at::Tensor counts = at::bincount(expert, /*weights=*/{}, num_experts);
  const int64_t* c = counts.data_ptr<int64_t>();
  out.counts.assign(c, c + num_experts);
  return out;
}

at::Tensor IndexDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                const at::Tensor& expert, const at::Tensor& weight,
                                const Experts& experts) {
  const ExpertOrder grouped = GroupByExpert(expert, experts.num_experts());
  const at::Tensor tok = token.index_select(0, grouped.order);
  const at::Tensor rows = x.index_select(0, tok);
  const at::Tensor out = experts.ForwardGrouped(rows, grouped.counts);
  const at::Tensor w = weight.index_select(0, grouped.order).to(out.scalar_type()).unsqueeze(1);
  return at::zeros_like(x).index_add(0, tok, out * w);
}

at::Tensor EinsumDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                 const at::Tensor& expert, const at::Tensor& slot,
                                 const at::Tensor& weight, int64_t capacity,
                                 const Experts& experts) {
  const int64_t t = x.size(0);
  const int64_t e = experts.num_experts();
  const at::Tensor flat = (token * e + expert) * capacity + slot;
  const at::Tensor dispatch =
      at::zeros({t * e * capacity}, x.options()).index_fill(0, flat, 1.0).view({t, e, capacity});
  const at::Tensor combine = at::zeros({t * e * capacity}, weight.options())
                                 .index_put({flat}, weight)
                                 .view({t, e, capacity})
                                 .to(x.scalar_type());
  const at::Tensor expert_in = at::einsum("tec,td->ecd", {dispatch, x});
  const at::Tensor expert_out = experts.ForwardBatched(expert_in);
  return at::einsum("tec,ecd->td", {combine, expert_out});
}

}  // namespace moebench
