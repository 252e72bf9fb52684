// Autocast (mixed precision) scopes for CPU and CUDA, spelled for LibTorch 1.13 and 2.x.
// See Note [Device and precision] in harness/train/device.h.
#pragma once

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include "harness/torch_compat.h"

namespace moebench {

namespace compat {

// 2.4 replaced the per-backend calls (is_enabled / is_cpu_enabled, ...) with ones taking the
// device type; the old spellings are deprecated there.
#if MOEBENCH_TORCH_AT_LEAST(2, 4)
inline bool AutocastEnabled(at::DeviceType t) { return at::autocast::is_autocast_enabled(t); }
inline void SetAutocastEnabled(at::DeviceType t, bool on) {
  at::autocast::set_autocast_enabled(t, on);
}
inline at::ScalarType AutocastDtype(at::DeviceType t) {
  return at::autocast::get_autocast_dtype(t);
}
inline void SetAutocastDtype(at::DeviceType t, at::ScalarType dtype) {
  at::autocast::set_autocast_dtype(t, dtype);
}
#else
inline bool AutocastEnabled(at::DeviceType t) {
  if (t == at::kCPU) return at::autocast::is_cpu_enabled();
  if (t == at::kCUDA) return at::autocast::is_enabled();
  return false;
}
inline void SetAutocastEnabled(at::DeviceType t, bool on) {
  if (t == at::kCPU) at::autocast::set_cpu_enabled(on);
  if (t == at::kCUDA) at::autocast::set_enabled(on);
}
inline at::ScalarType AutocastDtype(at::DeviceType t) {
  return t == at::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                        : at::autocast::get_autocast_cpu_dtype();
}
inline void SetAutocastDtype(at::DeviceType t, at::ScalarType dtype) {
  if (t == at::kCPU) at::autocast::set_autocast_cpu_dtype(dtype);
  if (t == at::kCUDA) at::autocast::set_autocast_gpu_dtype(dtype);
}
#endif

}  // namespace compat

// Autocast to `dtype` for tensors on devices of type `t` while in scope (enable = false: a
// no-op). Restores the previous state; the outermost scope frees the cast-weight cache.
class AutocastScope {
 public:
  AutocastScope(at::DeviceType t, bool enable, at::ScalarType dtype = at::kBFloat16)
      : type_(t), active_(enable) {
    if (!active_) return;
    was_enabled_ = compat::AutocastEnabled(t);
    was_dtype_ = compat::AutocastDtype(t);
    compat::SetAutocastEnabled(t, true);
    compat::SetAutocastDtype(t, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::SetAutocastEnabled(type_, was_enabled_);
    compat::SetAutocastDtype(type_, was_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  at::DeviceType type_;
  bool active_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

// Note [Weight casts once per step]: autocast casts a leaf fp32 weight that requires grad to
// bf16 once and keeps the cast in its cache until the outermost autocast scope ends. The trainer
// opens one scope per forward pass (the loss stays fp32), so THOR's two passes and every
// micro-batch of a step would cast every weight again. A CastCacheScope around the whole step
// keeps the cache (and so one cast of each weight) for the step: it only holds autocast's
// nesting count, enabling nothing. The weights do not change within a step (the optimizer
// runs after it), and a cast's backward saves no tensor, so the backward of each pass goes
// through the one cast into the fp32 weight's gradient. The experts' own GEMMs (outside
// autocast's ops) take their weights through CastWeight, which uses the same cache.
class CastCacheScope {
 public:
  explicit CastCacheScope(bool enable) : active_(enable) {
    if (active_) at::autocast::increment_nesting();
  }
  ~CastCacheScope() {
    if (active_ && at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  }
  CastCacheScope(const CastCacheScope&) = delete;
  CastCacheScope& operator=(const CastCacheScope&) = delete;

 private:
  bool active_;
};

// `w` in dtype `dt`: through autocast's cast cache when autocast is on for w's device and casts
// to `dt` (Note [Weight casts once per step]), else a plain cast (none when w has that dtype).
inline at::Tensor CastWeight(const at::Tensor& w, at::ScalarType dt) {
  if (w.scalar_type() == dt) return w;
  const at::DeviceType t = w.device().type();
  if (compat::AutocastEnabled(t) && compat::AutocastDtype(t) == dt) {
    return at::autocast::cached_cast(dt, w, t);
  }
  return w.to(dt);
}

// Autocast off for tensors on devices of type `t` while in scope (the routers run in fp32:
// Switch Transformer's selective precision).
class NoAutocast {
 public:
  explicit NoAutocast(at::DeviceType t) : type_(t), was_enabled_(compat::AutocastEnabled(t)) {
    if (was_enabled_) compat::SetAutocastEnabled(t, false);
  }
  ~NoAutocast() {
    if (was_enabled_) compat::SetAutocastEnabled(type_, true);
  }
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;

 private:
  at::DeviceType type_;
  bool was_enabled_;
};

// The dtype autocast gives a matmul of fp32 x on x's device: x's own dtype when autocast is off
// or x is not fp32.
inline at::ScalarType MatmulDtype(const at::Tensor& x) {
  const at::DeviceType t = x.device().type();
  return compat::AutocastEnabled(t) && x.scalar_type() == at::kFloat ? compat::AutocastDtype(t)
                                                                     : x.scalar_type();
}

}  // namespace moebench
