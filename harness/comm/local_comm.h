// One process that plays W virtual workers: the exchange is a permutation of row blocks, and
// the meter counts what W real workers would send. See Note [Token blocks].
#pragma once

#include "harness/comm/comm.h"

namespace moebench {

class LocalComm : public Comm {
 public:
  explicit LocalComm(Topology topology);
  const Topology& topology() const override { return topology_; }
  bool plays_all_workers() const override { return true; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  at::Tensor AllToAll(const at::Tensor& send, const std::vector<int64_t>& rows) override;
  void AllReduceSum(at::Tensor&) override {}
  void Broadcast(at::Tensor&, int) override {}
  at::Tensor AllGather(const at::Tensor& tensor) override { return tensor.unsqueeze(0); }
  void Barrier() override {}
  std::string backend() const override { return "local"; }

 private:
  Topology topology_;
};

}  // namespace moebench
