#include "harness/train/rank_watch.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "harness/store/liveness.h"
#include "harness/store/store.h"

namespace moebench {

namespace {
int g_pipe[2] = {-1, -1};
struct sigaction g_old_term;

void OnTerm(int) {
  const unsigned char b = 1;
  ssize_t ignored = write(g_pipe[1], &b, 1);
  (void)ignored;
}
}  // namespace

std::string EndedRanks(const std::vector<RankProcess>& ranks, int self, double wait_s) {
  const std::string host = ThisHost();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int>(wait_s * 1000));
  for (;;) {
    std::string out;
    for (const RankProcess& r : ranks) {
      if (r.rank == self || r.host != host || ProcessAlive(r.pid)) continue;
      out += (out.empty() ? "" : ", ") +
             ("rank " + std::to_string(r.rank) + " (pid " + std::to_string(r.pid) + ")");
    }
    if (!out.empty() || std::chrono::steady_clock::now() >= deadline) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

StopSignalWatch::StopSignalWatch(std::function<void()> on_stop) {
  if (g_pipe[0] >= 0) throw std::logic_error("StopSignalWatch: one at a time");
  if (pipe(g_pipe) != 0) throw std::runtime_error("StopSignalWatch: pipe failed");
  thread_ = std::thread([on_stop = std::move(on_stop), fd = g_pipe[0]]() {
    unsigned char b = 0;
    while (read(fd, &b, 1) < 0 && errno == EINTR) {
    }
    if (b == 0) return;  // the watch ends
    on_stop();
    signal(SIGTERM, SIG_DFL);
    raise(SIGTERM);
  });
  struct sigaction sa {};
  sa.sa_handler = OnTerm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignalWatch::~StopSignalWatch() {
  sigaction(SIGTERM, &g_old_term, nullptr);
  const unsigned char b = 0;
  ssize_t ignored = write(g_pipe[1], &b, 1);
  (void)ignored;
  thread_.join();
  close(g_pipe[0]);
  close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

void RecordStoppedAfterEndedRank(const std::string& db, const std::string& run_id,
                                 const std::vector<RankProcess>& ranks, int self, int world_size) {
  const std::string ended = EndedRanks(ranks, self, 1.0);
  if (ended.empty()) return;
  try {
    Store store(db);
    const auto row = store.FindRun(run_id);
    if (!row || row->status != RunStatus::kRunning || row->pid != getpid()) return;
    store.SetRunStatus(run_id, RunStatus::kFailed,
                       ended + " ended while the run was training; rank " + std::to_string(self) +
                           " of " + std::to_string(world_size) +
                           " was then stopped by signal 15 (Terminated)",
                       128 + SIGTERM);
  } catch (const std::exception& e) {
    std::cerr << "moebench: could not record run " << run_id << " as failed (" << e.what() << "); "
              << ended << " ended while it was training" << std::endl;
  }
}

bool UnderMoebenchLauncher() {
  const char* v = std::getenv("MOEBENCH_LAUNCHER");
  return v != nullptr && *v != '\0';
}

}  // namespace moebench
