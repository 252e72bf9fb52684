// Index-based dispatch and combine (the hot path) and the dense einsum form (test oracle).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include "harness/moe/experts.h"

namespace moebench {

// Stable order of assignments by expert, and the per-expert counts (one host sync).
struct ExpertOrder {
  at::Tensor order;             // [A] permutation of the assignments, grouped by expert
  std::vector<int64_t> counts;  // [E]
};
ExpertOrder GroupByExpert(const at::Tensor& expert, int64_t num_experts);

// rows[a] = x[index[a]] (index_select); the backward scatter-adds the row gradients back into
// x's rows, duplicates summed. See Note [Row scatter kernels].
at::Tensor GatherRows(const at::Tensor& x, const at::Tensor& index);

// y [num_tokens, d]: y[t] = sum over a with token[a] = t of weight[a] * rows[a]; tokens
// without an assignment get 0. Differentiable in rows and weight (fp32 weights, any row dtype).
at::Tensor CombineRows(const at::Tensor& rows, const at::Tensor& token, const at::Tensor& weight,
                       int64_t num_tokens);

// y[t] = sum over assignments (t, e, w) of w * E_e(x[t]); tokens without one get 0.
// Gather rows by index, one GEMM pair per expert on exactly its rows, weighted scatter-add.
at::Tensor IndexDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                const at::Tensor& expert, const at::Tensor& weight,
                                const Experts& experts);
// The same with any expert step: rows grouped by expert, counts[e] rows for expert e, in
// expert order -> rows of the same shape and order (the identity times dispatch + combine
// alone).
using GroupedExpertFn =
    std::function<at::Tensor(const at::Tensor& rows, const std::vector<int64_t>& counts)>;
at::Tensor IndexDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                const at::Tensor& expert, const at::Tensor& weight,
                                int64_t num_experts, const GroupedExpertFn& experts);

// The dense reference (GShard / mesh-TF): dispatch mask D [T, E, C] and combine tensor
// Cb [T, E, C], expert_in = einsum("tec,td->ecd"), y = einsum("tec,ecd->td"). Test oracle
// only: its cost is quadratic in T. Slots must be unique per expert and < capacity.
at::Tensor EinsumDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                 const at::Tensor& expert, const at::Tensor& slot,
                                 const at::Tensor& weight, int64_t capacity,
                                 const Experts& experts);
// The same with any expert step on the padded [E, C, d] buffer.
using BatchedExpertFn = std::function<at::Tensor(const at::Tensor& expert_in)>;
at::Tensor EinsumDispatchCombine(const at::Tensor& x, const at::Tensor& token,
                                 const at::Tensor& expert, const at::Tensor& slot,
                                 const at::Tensor& weight, int64_t capacity, int64_t num_experts,
                                 const BatchedExpertFn& experts);

}  // namespace moebench
