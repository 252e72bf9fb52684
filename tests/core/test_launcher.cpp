// The local launcher: environment per rank, prefixed output, first failure stops the rest.
#include <gtest/gtest.h>

#include <chrono>

#include "harness/comm/launcher.h"

namespace moebench {
namespace {

TEST(Launcher, EveryRankGetsItsEnvironment) {
  LaunchOptions o;
  o.nproc = 4;
  o.ranks_per_node = 2;
  // Each rank checks its own variables; a wrong one makes it exit 3.
  o.argv = {"/bin/sh", "-c",
            "[ \"$WORLD_SIZE\" = 4 ] && [ \"$LOCAL_WORLD_SIZE\" = 2 ] && "
            "[ \"$LOCAL_RANK\" = $((RANK % 2)) ] && [ -n \"$MASTER_PORT\" ] && "
            "[ \"$MASTER_ADDR\" = 127.0.0.1 ] || exit 3"};
  const LaunchResult r = Launch(o);
  EXPECT_EQ(r.exit_code, 0) << r.first_failure;
  EXPECT_EQ(r.exits.size(), 4u);
}

TEST(Launcher, FirstFailureStopsTheOthers) {
  LaunchOptions o;
  o.nproc = 3;
  o.grace_seconds = 2;
  // Rank 1 fails at once with code 7; the others would sleep for a minute.
  o.argv = {"/bin/sh", "-c", "if [ \"$RANK\" = 1 ]; then exit 7; fi; exec sleep 60"};
  const auto t0 = std::chrono::steady_clock::now();
  const LaunchResult r = Launch(o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.first_failed_rank, 1);
  EXPECT_EQ(r.first_failure, "rank 1 exited with code 7");
  EXPECT_LT(s, 30.0);  // bounded by the grace period, not the sleep
  ASSERT_EQ(r.exits.size(), 3u);
  for (const auto& e : r.exits) {
    if (e.rank != 1) {
      EXPECT_EQ(e.signal, 15) << "rank " << e.rank;  // SIGTERM
    }
  }
}

// Two ranks: rank 0's collective fails at once (exit kExitCollectiveFailed), rank 1 runs the
// shell command `rank1`.
LaunchOptions CollectiveFailsOnRankZero(const std::string& rank1) {
  LaunchOptions o;
  o.nproc = 2;
  o.grace_seconds = 2;
  o.argv = {"/bin/sh", "-c",
            "if [ \"$RANK\" = 0 ]; then exit " + std::to_string(kExitCollectiveFailed) + "; fi; " +
                rank1};
  return o;
}

// Note [Which rank failed]: rank 0's collective fails first because rank 1 is failing; rank 1
// exits with its own error a moment later and is the one named.
TEST(Launcher, AFailedCollectiveYieldsToTheRankThatCausedIt) {
  const LaunchResult r = Launch(CollectiveFailsOnRankZero("sleep 0.5; exit 1"));
  EXPECT_EQ(r.first_failed_rank, 1);
  EXPECT_EQ(r.first_failure, "rank 1 exited with code 1");
  ASSERT_EQ(r.exits.size(), 2u);
  EXPECT_EQ(r.exits[0].rank, 0);  // rank 0 did end first
}

// A failed collective with no other failure (a hung peer never exits) is named after the grace
// period, and the hung rank is stopped.
TEST(Launcher, AFailedCollectiveAloneIsNamedAfterTheGracePeriod) {
  const auto t0 = std::chrono::steady_clock::now();
  const LaunchResult r = Launch(CollectiveFailsOnRankZero("exec sleep 60"));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.first_failed_rank, 0);
  EXPECT_EQ(r.exit_code, kExitCollectiveFailed);
  EXPECT_GE(s, kCollectiveGraceSeconds);
  EXPECT_LT(s, 30.0);
}

TEST(Launcher, RejectsBadLayouts) {
  LaunchOptions o;
  o.nproc = 3;
  o.ranks_per_node = 2;
  o.argv = {"/bin/true"};
  EXPECT_THROW(Launch(o), std::invalid_argument);
  o.ranks_per_node = 0;
  o.argv.clear();
  EXPECT_THROW(Launch(o), std::invalid_argument);
}

}  // namespace
}  // namespace moebench
