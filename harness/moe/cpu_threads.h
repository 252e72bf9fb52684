// CPU thread control for running independent pieces of work (the experts of a layer)
// concurrently: OpenBLAS and OpenMP pinned to one thread per caller for a scope, and a pool of
// persistent helper threads. See Note [Experts in parallel] in harness/moe/experts.cpp.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>

namespace moebench {

// True when both knobs below were found at run time: OpenBLAS's openblas_set_num_threads and
// OpenMP's omp_set_num_threads (looked up with dlsym, so any BLAS still links).
bool CanPinCpuThreads();

// One thread until scope exit, then the previous count, for OpenBLAS (process-wide) or for
// OpenMP (the calling thread's teams, as ATen's parallel_for starts them: omp_set_num_threads
// sets the calling thread's value only). No-op where the library was not found.
class OneThreadScope {
 public:
  enum class Knob { kOpenBlas, kOpenMp };
  explicit OneThreadScope(Knob knob);
  ~OneThreadScope();
  OneThreadScope(const OneThreadScope&) = delete;
  OneThreadScope& operator=(const OneThreadScope&) = delete;

 private:
  Knob knob_;
  int saved_ = 0;
};

// Persistent helper threads, started on first use and never stopped (detached). Each helper
// runs ATen's lazy per-thread initialisation once, then keeps its OpenMP teams at one thread.
// Started once because a fresh thread's first ATen op re-runs that initialisation, which
// recreates the process-wide pthreadpool, whose new workers spin (Note [Experts in parallel]).
class HelperThreads {
 public:
  // The pool of this process (a forked child gets a new one), grown to at least `helpers`.
  static HelperThreads& Get(int helpers);

  // Runs job() on `helpers` helper threads and on the caller at once; returns when every copy
  // has returned, rethrowing the first exception one threw (the caller's first). One Run at a
  // time; a job must not call Run.
  void Run(int helpers, const std::function<void()>& job);

 private:
  HelperThreads() = default;
  void Grow(int helpers);
  void Loop();

  std::mutex run_, m_;
  std::condition_variable wake_, done_;
  const std::function<void()>* job_ = nullptr;
  std::exception_ptr error_;
  uint64_t generation_ = 0;
  int wanted_ = 0, claimed_ = 0, finished_ = 0, started_ = 0;
};

}  // namespace moebench
