// The ATen ops a piece of code runs, with what a CUDA graph captured from it would bake in: each
// op's name, its tensors' dtypes and shapes, and its other arguments' values, generators' seeds
// included. Two runs with equal traces launch the same kernels with the same arguments, so a
// graph captured from the first would replay the second, its inputs copied into the captured
// ones. (What it cannot see: host code between ops, and host tensors copied to the device,
// which on a CPU build are no copies at all.) The tests use it, and graph steps check their
// warm-up with it (Note [Training step graphs] in harness/train/step_graphs.cpp).
#pragma once

#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/record_function.h>

namespace moebench {

// Ops of `step` on every thread, in the order they started.
inline std::vector<std::string> OpTrace(const std::function<void()>& step) {
  static std::mutex mu;
  static std::vector<std::string>* out = nullptr;
  std::vector<std::string> trace;
  {
    std::lock_guard<std::mutex> lock(mu);
    out = &trace;
  }
  auto start = [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    std::ostringstream s;
    s << fn.name() << "(";
    for (const c10::IValue& v : fn.inputs()) {
      if (v.isTensor()) {
        const at::Tensor& t = v.toTensor();
        if (t.defined()) {
          s << t.scalar_type() << t.sizes();
        } else {
          s << "undefined";
        }
      } else if (v.isInt() || v.isDouble() || v.isBool() || v.isIntList() || v.isString() ||
                 v.isNone() || v.isDoubleList() || v.isBoolList()) {
        s << v;
      } else if (v.isGenerator()) {
        s << "Generator(seed " << v.toGenerator().current_seed() << ")";
      } else if (v.isScalar()) {
        s << v.toScalar();
      } else {
        s << "<" << v.tagKind() << ">";
      }
      s << ", ";
    }
    s << ")";
    std::lock_guard<std::mutex> lock(mu);
    if (out != nullptr) out->push_back(s.str());
    return nullptr;
  };
  // Removed, and the output cleared, however `step` ends (an exception included).
  struct Callback {
    at::CallbackHandle handle;
    ~Callback() {
      at::removeCallback(handle);
      std::lock_guard<std::mutex> lock(mu);
      out = nullptr;
    }
  };
  {
    const Callback callback{
        at::addGlobalCallback(at::RecordFunctionCallback(start).needsInputs(true).scopes(
            {at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}))};
    step();
  }
  return trace;
}

// The differences of two traces, for a failure message ("" when equal): the first `limit` ops
// that differ, and the lengths when they differ.
inline std::string TraceDifferences(const std::vector<std::string>& a,
                                    const std::vector<std::string>& b, int limit = 8) {
  std::string out;
  int shown = 0;
  for (size_t i = 0; i < a.size() && i < b.size() && shown < limit; ++i) {
    if (a[i] != b[i]) {
      out += "op " + std::to_string(i) + ": " + a[i] + " vs " + b[i] + "\n";
      ++shown;
    }
  }
  if (a.size() != b.size()) {
    out += std::to_string(a.size()) + " ops vs " + std::to_string(b.size()) + "\n";
  }
  return out;
}

}  // namespace moebench
