#include "harness/model/compute_model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace moebench {

ForwardFlops ModelForwardFlops(const ModelConfig& cfg, int64_t moe_dense_width,
                               int64_t router_experts, int64_t batch, int64_t src_len,
                               int64_t tgt_len) {
  const double b = static_cast<double>(batch);
  const double s = static_cast<double>(src_len);
  const double t = static_cast<double>(tgt_len);
  const double d = static_cast<double>(cfg.d_model);
  ForwardFlops f;
  auto ffn_block = [&](int64_t block, double tokens) {
    if (!cfg.IsMoeBlock(block)) {
      f.ffn += 2.0 * 2.0 * tokens * d * static_cast<double>(cfg.d_ff);
    } else if (moe_dense_width > 0) {
      f.ffn += 2.0 * 2.0 * tokens * d * static_cast<double>(moe_dense_width);
    } else {
      f.router += 2.0 * tokens * d * static_cast<double>(router_experts);
      if (cfg.shared_experts > 0) {  // the shared experts' FFN (one of width K_s * f / m)
        f.ffn += 2.0 * 2.0 * tokens * d *
                 static_cast<double>(cfg.shared_experts * cfg.d_ff / cfg.expert_granularity);
      }
    }
  };
  for (int64_t i = 0; i < cfg.encoder_layers; ++i) {
    f.attention += 4.0 * 2.0 * b * s * d * d + 2.0 * 2.0 * b * s * s * d;
    ffn_block(i, b * s);
  }
  for (int64_t i = 0; i < cfg.decoder_layers; ++i) {
    f.attention += 4.0 * 2.0 * b * t * d * d + 2.0 * 2.0 * b * t * t * d;   // self
    f.attention += 2.0 * 2.0 * b * t * d * d + 2.0 * 2.0 * b * s * d * d +  // cross: Q, O; K, V
                   2.0 * 2.0 * b * t * s * d;
    ffn_block(i, b * t);
  }
  f.output = 2.0 * b * t * d * static_cast<double>(cfg.vocab);
  return f;
}

const std::vector<DeviceProfile>& DeviceProfiles() {
  static const std::vector<DeviceProfile> profiles = {
      {"v100-32gb", 125e12, "NVIDIA V100 SXM2 data sheet: 125 TFLOP/s fp16 tensor"},
      {"a100-80gb", 312e12, "NVIDIA A100 data sheet: 312 TFLOP/s bf16/fp16 tensor, dense"},
      {"h100", 989e12, "NVIDIA H100 SXM data sheet: 989 TFLOP/s bf16/fp16 tensor, dense"},
  };
  return profiles;
}

const DeviceProfile& FindDeviceProfile(const std::string& name) {
  std::string known;
  for (const auto& p : DeviceProfiles()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw std::invalid_argument("unknown device_profile '" + name + "' (known: " + known + ")");
}

double ModeledComputeSeconds(const std::vector<double>& per_worker_flops,
                             const DeviceProfile& device, double efficiency) {
  if (!(efficiency > 0) || efficiency > 1) {
    throw std::invalid_argument("device_efficiency must be in (0, 1], got " +
                                std::to_string(efficiency));
  }
  double most = 0;
  for (double f : per_worker_flops) most = std::max(most, f);
  return most / (device.peak_flops * efficiency);
}

double ModeledStepSeconds(double compute_s, double comm_s, double overlap) {
  if (!(overlap >= 0) || overlap > 1) {
    throw std::invalid_argument("comm_overlap must be in [0, 1], got " + std::to_string(overlap));
  }
  return compute_s + comm_s - overlap * std::min(compute_s, comm_s);
}

}  // namespace moebench
