#include "harness/moe/cpu_threads.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include <ATen/Parallel.h>

namespace moebench {

namespace {

using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

struct ThreadKnob {
  SetThreadsFn set = nullptr;
  GetThreadsFn get = nullptr;
};

ThreadKnob FindKnob(const char* set_name, const char* get_name) {
  ThreadKnob k;
  k.set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, set_name));
  k.get = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, get_name));
  if (k.set == nullptr || k.get == nullptr) k = ThreadKnob();
  return k;
}

const ThreadKnob& OpenBlas() {
  static const ThreadKnob k = FindKnob("openblas_set_num_threads", "openblas_get_num_threads");
  return k;
}

const ThreadKnob& OpenMp() {
  static const ThreadKnob k = FindKnob("omp_set_num_threads", "omp_get_max_threads");
  return k;
}

}  // namespace

bool CanPinCpuThreads() { return OpenBlas().set != nullptr && OpenMp().set != nullptr; }

OneThreadScope::OneThreadScope(Knob knob) : knob_(knob) {
  const ThreadKnob& k = knob_ == Knob::kOpenBlas ? OpenBlas() : OpenMp();
  if (k.set == nullptr) return;
  saved_ = k.get();
  k.set(1);
}

OneThreadScope::~OneThreadScope() {
  const ThreadKnob& k = knob_ == Knob::kOpenBlas ? OpenBlas() : OpenMp();
  if (k.set != nullptr) k.set(saved_);
}

HelperThreads& HelperThreads::Get(int helpers) {
  static std::mutex m;
  static HelperThreads* pool = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(m);
  if (pool == nullptr || owner != getpid()) {
    pool = new HelperThreads();  // never freed: its threads are detached and may outlive exit
    owner = getpid();
  }
  pool->Grow(helpers);
  return *pool;
}

void HelperThreads::Grow(int helpers) {
  std::lock_guard<std::mutex> lock(m_);
  for (int i = started_; i < helpers; ++i) std::thread([this] { Loop(); }).detach();
  started_ = std::max(started_, helpers);
}

void HelperThreads::Run(int helpers, const std::function<void()>& job) {
  std::lock_guard<std::mutex> one_at_a_time(run_);
  std::unique_lock<std::mutex> lock(m_);
  job_ = &job;
  wanted_ = std::min(helpers, started_);
  claimed_ = finished_ = 0;
  error_ = nullptr;
  ++generation_;
  lock.unlock();
  wake_.notify_all();
  std::exception_ptr mine;
  try {
    job();
  } catch (...) {
    mine = std::current_exception();
  }
  lock.lock();
  done_.wait(lock, [&] { return finished_ == wanted_; });
  job_ = nullptr;
  if (!mine) mine = error_;
  lock.unlock();
  if (mine) std::rethrow_exception(mine);
}

void HelperThreads::Loop() {
  (void)at::get_num_threads();  // ATen's lazy per-thread initialisation first, then one thread
  if (OpenMp().set != nullptr) OpenMp().set(1);
  std::unique_lock<std::mutex> lock(m_);
  uint64_t seen = 0;  // a helper started during a Run joins it
  for (;;) {
    wake_.wait(lock, [&] { return generation_ != seen; });
    seen = generation_;
    if (claimed_ >= wanted_) continue;
    ++claimed_;
    const std::function<void()>* job = job_;
    lock.unlock();
    std::exception_ptr error;
    try {
      (*job)();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !error_) error_ = error;
    if (++finished_ == wanted_) done_.notify_all();
  }
}

}  // namespace moebench
