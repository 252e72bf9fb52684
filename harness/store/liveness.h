// Is a run that the database calls `running` really running? A run process records its host
// and pid when it starts and a heartbeat every log_every steps (Store::Heartbeat). On this
// host the pid decides (a live, non-zombie moebench process); for a run on another host only
// the heartbeat can: it is stale after `stale_after`. The sweep runner puts a run found dead back
// to pending (it resumes from its checkpoint); see Note [Stale runs] in liveness.cpp.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "harness/store/store.h"

namespace moebench {

// gethostname().
std::string ThisHost();

// Whether process `pid` on this host is alive, not a zombie, and a moebench process.
bool ProcessAlive(int64_t pid);

// Why a `running` row is stale, or "" when it looks alive.
std::string StaleReason(const RunRow& run, const std::string& this_host,
                        std::chrono::seconds stale_after);

// The default `stale_after`: longer than any evaluation between two heartbeats.
constexpr std::chrono::seconds kDefaultStaleAfter{1800};

}  // namespace moebench
