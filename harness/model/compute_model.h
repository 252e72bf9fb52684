// The compute model: FLOPs of a training step -> modeled compute time on a named GPU. Torch-free.
// See Note [Compute model]; the communication half is harness/comm/network_model.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/model/sizes.h"
#include "harness/moe/expert_flops.h"  // ExpertForwardFlops

namespace moebench {

// Note [Compute model]
// FLOPs are matrix-product FLOPs, 2 per multiply-add; elementwise work (softmax, LayerNorm,
// activations, the loss, Adam) is left out, as in the usual 6 * parameters * tokens estimate.
// One forward over B sentences of source length S and target length T, model width d, FFN
// width f, vocabulary V:
//
//   encoder block   self-attention   Q, K, V, O projections 4 * 2 B S d^2, scores and
//                                    weighted values 2 * 2 B S^2 d
//                   dense FFN        2 * 2 B S d f
//   decoder block   self-attention   4 * 2 B T d^2 + 2 * 2 B T^2 d
//                   cross-attention  Q, O on the target 2 * 2 B T d^2, K, V on the source
//                                    2 * 2 B S d^2, scores and values 2 * 2 B T S d
//                   dense FFN        2 * 2 B T d f
//   MoE block       router           2 * tokens * d * E (the logits; methods without a
//                                    router: 0; E the routed experts, m * E when fine-grained)
//                   shared experts   2 * 2 * tokens * d * K_s * f / m (the shared FFN, on every
//                                    token's own worker: counted with the dense FFNs; Note
//                                    [Shared and fine-grained experts])
//                   experts          2 * 2 * d * h per row an expert computes (h its hidden
//                                    width), counted by the MoE layer as it runs: only the
//                                    expert FLOPs actually spent (dropped tokens, skipped
//                                    layers and gate-expert-drop cost nothing)
//   output          2 B T d V (the shared embedding as output projection)
//
// A training batch is counted sentence by sentence, each at its real lengths (B = 1, S and T
// its own; the trainer knows them on the host): the pad positions that fill a batch to its
// longest sentence are computed by the device but needed by no sentence, so they add nothing,
// as capacity padding adds nothing to the experts. The count is then the same however a batch
// is cut (micro-batches, ranks, padded graph shapes), and padding's cost shows as a lower MFU,
// the fraction `device_efficiency` stands for below. Without the lengths (a bare forward) the
// padded shape is counted.
// The dense baseline's blocks where MoE layers would be are dense FFNs of its width. A
// training step is forward + backward = 3 x the forward FLOPs (the backward computes the
// gradient of both the inputs and the weights of every product); THOR's two passes are two
// forwards. Compute is per worker: the non-expert FLOPs split evenly over the W workers (their
// token blocks), each worker's experts take the rows routed to them, and the step lasts as long
// as the busiest worker:
//
//   modeled compute = max over workers w of 3 * (non-expert / W + experts_w) / (peak * efficiency)
//
// peak is the device's dense half-precision (fp16 / bf16 tensor-core) peak, the precision the
// papers trained in; efficiency (spec `device_efficiency`, default 0.4) is the fraction of that
// peak a real MoE training step reaches (Megatron-Core reports ~47% for Mixtral 8x7B on H100,
// torchtitan 21% for DeepSeek-V3-16B on B200; small models reach less). The modeled step is
//
//   modeled step = compute + communication - overlap * min(compute, communication)
//
// with overlap (spec `comm_overlap`, default 0: none) the fraction of the shorter one hidden
// behind the longer.

struct ForwardFlops {
  double attention = 0;  // projections, scores and weighted values of every attention
  double ffn = 0;        // dense FFNs (and the dense baseline's wide ones)
  double router = 0;     // router logits
  double output = 0;     // the output projection
  double total() const { return attention + ffn + router + output; }
};

// Non-expert forward FLOPs of one forward of `cfg` over `batch` sentences of lengths src_len
// -> tgt_len. moe_dense_width: the width of the FFN in the MoE blocks for a dense method
// (0: MoE layers there); router_experts: the router's output width in MoE blocks (0: no router).
ForwardFlops ModelForwardFlops(const ModelConfig& cfg, int64_t moe_dense_width,
                               int64_t router_experts, int64_t batch, int64_t src_len,
                               int64_t tgt_len);

constexpr double kTrainingFlopsPerForward = 3.0;  // forward + backward (2x)

struct DeviceProfile {
  std::string name;
  double peak_flops;  // dense fp16/bf16 tensor-core FLOP/s
  std::string source;
};

// v100-32gb, a100-80gb, h100 (SXM parts; the vendors' data sheets, dense, no sparsity).
const std::vector<DeviceProfile>& DeviceProfiles();
// Throws std::invalid_argument listing the known names.
const DeviceProfile& FindDeviceProfile(const std::string& name);

// Seconds the busiest worker computes: per_worker_flops[w] = one step's FLOPs (forward and
// backward) of worker w.
double ModeledComputeSeconds(const std::vector<double>& per_worker_flops,
                             const DeviceProfile& device, double efficiency);

// compute + communication - overlap * min(compute, communication).
double ModeledStepSeconds(double compute_s, double comm_s, double overlap);

}  // namespace moebench
