// The second Comm: torch's c10d process groups (Gloo on CPU, NCCL on CUDA), one process per
// worker, rendezvous through a TCPStore. See Note [Rank environment] for where rank and world
// size come from.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "harness/comm/comm.h"
#include "harness/comm/dist_env.h"

namespace moebench {

struct C10dOptions {
  DistEnv env;
  Topology topology;       // workers == env.world_size; workers_per_node: the (emulated) nodes
  double timeout_s = 300;  // rendezvous and every collective; a dead or hung peer surfaces as
                           // an error within this bound
  bool cuda = false;       // NCCL on the current CUDA device (needs a CUDA build)
};

class C10dComm : public Comm {
 public:
  explicit C10dComm(const C10dOptions& opt);
  ~C10dComm() override;
  const Topology& topology() const override { return topology_; }
  bool plays_all_workers() const override { return false; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  at::Tensor AllToAll(const at::Tensor& send, const std::vector<int64_t>& rows) override;
  void AllReduceSum(at::Tensor& tensor) override;
  void Broadcast(at::Tensor& tensor, int root) override;
  at::Tensor AllGather(const at::Tensor& tensor) override;
  void Barrier() override;
  std::string backend() const override;
  std::vector<RankProcess> processes() const override { return processes_; }

 private:
  // Each rank writes its host and pid to the store and reads everyone's.
  void AnnounceProcesses();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Topology topology_;
  int rank_ = 0, size_ = 1;
  std::vector<RankProcess> processes_;
};

// True when this binary was built with CUDA (and so can create an NCCL group).
bool C10dHasNccl();
// True when this binary was built with gloo's headers (and so can create a Gloo group for CPU
// ranks). A CUDA build against a PyTorch wheel has none: see docs/gpu.md.
bool C10dHasGloo();

}  // namespace moebench
