// The communication interface the MoE layer and the trainer talk to.
// Implementations: LocalComm (one process plays W virtual workers, for accounting) and
// C10dComm (torch's c10d process groups). Every exchange is metered (CommMeter).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "harness/comm/comm_meter.h"
#include "harness/comm/topology.h"

namespace moebench {

// A rank's process as it announced itself when the group formed (C10dComm).
struct RankProcess {
  int rank = 0;
  std::string host;
  int64_t pid = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual const Topology& topology() const = 0;
  // True when this process holds every worker's tokens and experts (LocalComm).
  virtual bool plays_all_workers() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // All-to-all of row blocks. rows[src * W + dst] is the number of rows src sends to dst.
  // LocalComm: `send` holds every worker's rows ordered by (src, dst); the result is ordered by
  // (dst, src). A rank of a real process group passes its own rows and receives its own.
  virtual at::Tensor AllToAll(const at::Tensor& send, const std::vector<int64_t>& rows) = 0;
  // Sum over data-parallel replicas (no-op when one process holds the only replica).
  virtual void AllReduceSum(at::Tensor& tensor) = 0;
  virtual void Broadcast(at::Tensor& tensor, int root) = 0;
  // Every rank's `tensor` stacked along a new first dimension ([size(), ...]); the tensor
  // itself, unsqueezed, when one process plays every worker.
  virtual at::Tensor AllGather(const at::Tensor& tensor) = 0;
  virtual void Barrier() = 0;
  // "local" (one process), "gloo" or "nccl".
  virtual std::string backend() const = 0;
  // Every rank's process (host and pid), for naming a rank that died; empty for one process.
  virtual std::vector<RankProcess> processes() const { return {}; }

  CommMeter& meter() { return meter_; }

 private:
  CommMeter meter_;
};

std::vector<int64_t> TransposeSquare(const std::vector<int64_t>& m, int w);

}  // namespace moebench
