// What rank 0 of a process group can say about a run when another rank dies under a launcher
// that is not moebench's (torchrun, srun, mpirun), which records nothing in the database.
// See Note [A rank that ended under another launcher].
#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "harness/comm/comm.h"

namespace moebench {

// The ranks other than `self` whose process on this host has ended (gone or a zombie), e.g.
// "rank 1 (pid 4242)"; "" when none has. Ranks on other hosts cannot be checked and are not
// named. Waits up to `wait_s` for one to end (a peer's connection closes a moment before its
// process is gone).
std::string EndedRanks(const std::vector<RankProcess>& ranks, int self, double wait_s = 0);

// Note [A rank that ended under another launcher]: `moebench launch` and `train --world-size`
// see how each rank ended and record it; torchrun's agent, srun and mpirun do not know the
// database. When a rank is killed there, rank 0 (the writer) either sees its next collective
// fail, and its recorded error then names the ranks whose processes ended (EndedRanks), or is
// itself stopped first by the launcher's SIGTERM (torchrun's agent stops the other workers as
// soon as one fails). While a StopSignalWatch is alive, a SIGTERM runs `on_stop` on a thread
// of its own (a signal handler may not touch SQLite), then ends the process by SIGTERM as
// before. Under moebench's own launcher (MOEBENCH_LAUNCHER set) no watch is needed: the
// launcher records the failure, and a stopped sweep puts its runs back to pending.
class StopSignalWatch {
 public:
  explicit StopSignalWatch(std::function<void()> on_stop);
  ~StopSignalWatch();
  StopSignalWatch(const StopSignalWatch&) = delete;
  StopSignalWatch& operator=(const StopSignalWatch&) = delete;

 private:
  std::thread thread_;
};

// What a StopSignalWatch of rank `self` (the writer) does on SIGTERM: when a rank of this host
// has ended, records run `run_id` of database `db` failed naming it (if the run is still
// `running` under this process); else nothing, as before (an interrupted run stays `running`
// and is taken over by the next attempt).
void RecordStoppedAfterEndedRank(const std::string& db, const std::string& run_id,
                                 const std::vector<RankProcess>& ranks, int self, int world_size);

// Whether this process is a rank started by moebench's launcher (Note [Launcher]).
bool UnderMoebenchLauncher();

}  // namespace moebench
