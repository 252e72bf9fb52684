// The ATen ops a piece of code runs, with what a CUDA graph captured from it would bake in: each
// op's name, its tensors' dtypes and shapes, and its other arguments' values, generators' seeds
// included (not the device's default generator's: a replay reads its state as it finds it).
// Two runs with equal traces launch the same kernels with the same arguments, so a graph
// captured from the first would replay the second, its inputs copied into the captured ones.
// (What it cannot see: host code between ops, and host tensors copied to the device, which on a
// CPU build are no copies at all.) The tests use it, and graph steps check their warm-up with it
// (Note [Training step graphs] in harness/train/step_graphs.cpp).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/util/ThreadLocalDebugInfo.h>

namespace moebench {

// Where OpTrace's ops go: carried by the thread-local debug info, which at::ThreadLocalState
// hands on to the threads that work for the traced code (the autograd engine's device threads,
// our HelperThreads: Note [Experts in parallel]), as LibTorch's profiler hands on its state. So
// a trace holds the ops of `step` and of those threads and no other thread's (a trace on
// another thread, as two ranks in one test process run, keeps its own). Not recorded: ops
// dispatched inside at::parallel_for bodies on OpenMP's other threads (ATen's OpenMP
// parallel_for passes no thread-local state; the kernels run there dispatch no ops). The kind
// is one LibTorch leaves to its users (its own code reads it nowhere).
struct OpTraceSink : c10::DebugInfoBase {
  static constexpr c10::DebugInfoKind kKind = c10::DebugInfoKind::TEST_INFO_2;
  std::mutex mu;
  std::vector<std::string> ops;
};

// Ops of `step` and of the threads working for it, in the order they started.
inline std::vector<std::string> OpTrace(const std::function<void()>& step) {
  auto start = [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    auto* sink = dynamic_cast<OpTraceSink*>(c10::ThreadLocalDebugInfo::get(OpTraceSink::kKind));
    if (sink == nullptr) return nullptr;
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
        // A replay draws from the device's default generator at its state then (its seed and
        // offset as the step finds them, advanced by each replay): only another generator's
        // seed is baked in. So a default generator reseeded between steps (as a test may do)
        // is the same op.
        const at::Generator g = v.toGenerator();
        if (g == at::globalContext().defaultGenerator(g.device())) {
          s << "Generator(default)";
        } else {
          s << "Generator(seed " << g.current_seed() << ")";
        }
      } else if (v.isScalar()) {
        s << v.toScalar();
      } else {
        s << "<" << v.tagKind() << ">";
      }
      s << ", ";
    }
    s << ")";
    std::lock_guard<std::mutex> lock(sink->mu);
    sink->ops.push_back(s.str());
    return nullptr;
  };
  // One process-wide callback while any trace runs (added by the first, removed by the last,
  // however `step` ends), so that ops outside traces pay nothing.
  static std::mutex mu;
  static int active = 0;
  static at::CallbackHandle handle = 0;
  struct Active {
    Active(decltype(start) s) {
      std::lock_guard<std::mutex> lock(mu);
      if (active == 0) {  // counted once added: a throw leaves no count behind
        handle = at::addGlobalCallback(at::RecordFunctionCallback(s).needsInputs(true).scopes(
            {at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
      }
      ++active;
    }
    ~Active() {
      std::lock_guard<std::mutex> lock(mu);
      if (--active == 0) at::removeCallback(handle);
    }
  };
  auto sink = std::make_shared<OpTraceSink>();
  {
    const Active on(start);
    const c10::DebugInfoGuard guard(OpTraceSink::kKind, sink);
    step();
  }
  std::lock_guard<std::mutex> lock(sink->mu);
  return std::move(sink->ops);
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
