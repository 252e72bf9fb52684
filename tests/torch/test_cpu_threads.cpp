// HelperThreads and the thread pins behind Note [Experts in parallel].
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "harness/moe/cpu_threads.h"

namespace moebench {
namespace {

// Every copy of the job waits (up to 10 s) until `n` copies have started: passes only if they
// really run at the same time.
bool WaitForAll(std::atomic<int>& arrived, int n) {
  ++arrived;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (arrived.load() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(CpuThreads, RunExecutesTheJobOnTheCallerAndEachHelperAtOnce) {
  for (int round = 0; round < 3; ++round) {  // the same pool serves repeated runs
    std::mutex m;
    std::set<std::thread::id> ids;
    std::atomic<int> arrived{0};
    std::atomic<int> timed_out{0};
    HelperThreads::Get(2).Run(2, [&] {
      if (!WaitForAll(arrived, 3)) ++timed_out;
      std::lock_guard<std::mutex> lock(m);
      ids.insert(std::this_thread::get_id());
    });
    EXPECT_EQ(timed_out.load(), 0) << "round " << round;
    EXPECT_EQ(ids.size(), 3u) << "round " << round;
    EXPECT_EQ(ids.count(std::this_thread::get_id()), 1u) << "round " << round;
  }
}

TEST(CpuThreads, RunRethrowsAHelpersExceptionAfterEveryCopyReturned) {
  HelperThreads& pool = HelperThreads::Get(1);
  std::atomic<int> returned{0};
  const std::thread::id caller = std::this_thread::get_id();
  try {
    pool.Run(1, [&] {
      if (std::this_thread::get_id() != caller) {
        ++returned;
        throw std::runtime_error("helper failed");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++returned;
    });
    FAIL() << "expected the helper's exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "helper failed");
  }
  EXPECT_EQ(returned.load(), 2);
  // The pool still works after an exception.
  std::atomic<int> runs{0};
  pool.Run(1, [&] { ++runs; });
  EXPECT_EQ(runs.load(), 2);
}

TEST(CpuThreads, HelpersRunAtenSeriallyAndThePinsRestoreTheCaller) {
  if (!CanPinCpuThreads()) GTEST_SKIP() << "no OpenBLAS or OpenMP knobs in this process";
  const int old_threads = at::get_num_threads();
  at::set_num_threads(2);
  std::atomic<int> helper_threads{-1};
  std::atomic<int> caller_threads{-1};
  const std::thread::id caller = std::this_thread::get_id();
  {
    OneThreadScope omp(OneThreadScope::Knob::kOpenMp);
    HelperThreads::Get(1).Run(1, [&] {
      (std::this_thread::get_id() == caller ? caller_threads : helper_threads) =
          at::get_num_threads();
    });
  }
  EXPECT_EQ(helper_threads.load(), 1);
  EXPECT_EQ(caller_threads.load(), 1);
  EXPECT_EQ(at::get_num_threads(), 2);  // restored on scope exit
  at::set_num_threads(old_threads);
}

TEST(CpuThreads, OneThreadScopeSetsOpenBlasToOneAndRestoresIt) {
  if (!CanPinCpuThreads()) GTEST_SKIP() << "no OpenBLAS or OpenMP knobs in this process";
  using GetFn = int (*)();
  using SetFn = void (*)(int);
  const auto get = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  ASSERT_NE(get, nullptr);
  const int old = get();
  set(2);
  {
    OneThreadScope blas(OneThreadScope::Knob::kOpenBlas);
    EXPECT_EQ(get(), 1);
  }
  EXPECT_EQ(get(), 2);
  set(old);
}

}  // namespace
}  // namespace moebench
