// Training steps as CUDA graphs (run-spec field cuda_graph = on): each step's batch padded to
// one of a few shapes, one graph per shape, captured after a checked warm-up and replayed.
// Note [Training step graphs] in step_graphs.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "harness/train/data_pipeline.h"
#include "harness/train/training.h"

namespace moebench {

// The padded length of a graph step whose longest sentence side (its source, or its target with
// its end marker) has `longest` tokens: `longest` rounded up to a multiple of the smallest power
// of two q with 8 q >= longest (1 up to 8 tokens, 2 up to 16, 4 up to 32, 8 up to 64, 16 up to
// 128, ...): less than 5/4 of the length (17 -> 20, 129 -> 160), four lengths per doubling.
int64_t GraphLength(int64_t longest);

struct GraphShape {
  int64_t length = 0;  // tokens per sentence, source and target alike (GraphLength)
  int64_t rows = 0;    // sentences per micro-batch: blocks x rows per block
  bool operator<(const GraphShape& o) const {
    return std::tie(length, rows) < std::tie(o.length, o.rows);
  }
};

// The shape of every step whose longest side pads to GraphLength(longest): rows enough for the
// most sentences such a batch can have under the token budget (a batch costs sentences x its
// longest side, datasets/batching.h: at most tokens_per_batch / (L' + 1) sentences, L' the
// padded length below), per micro-batch and worker block. Rows x length is then under 5/4 of
// tokens_per_batch per step (plus the rounding of the rows to blocks and micro-batches): a
// graph step's activations take up to a quarter more memory than the eager step's.
GraphShape GraphShapeFor(int64_t longest, int64_t tokens_per_batch, int64_t micro_batches,
                         int blocks);

// `batch` (this process's, on the host) cut into micro-batches as MicroBatches cuts it and
// padded to `shape`: micro-batch i holds block w's sentences of chunk i in rows
// [w * r, w * r + n) (r = shape.rows / blocks), all-pad sentences (length 0) after them, every
// sentence padded to shape.length; each keeps the step's ntokens (ntokens_tensor stays
// undefined). Throws when a block's chunk does not fit (a batch over the token budget).
// pinned: the padded tensors in pinned (page-locked) host memory, for asynchronous copies to a
// GPU (needs a CUDA build and device).
std::vector<Batch> GraphMicroBatches(const Batch& batch, const GraphShape& shape,
                                     int64_t micro_batches, int blocks, int64_t pad_id,
                                     bool pinned = false);

// On a process group of `world` ranks: every rank's share of each graph micro-batch of the
// step's whole `batch` ([micro-batch][rank]) padded to `whole` (the shape of all ranks' rows:
// whole.rows / world per rank) -- each rank's real lengths (RankShares' sentences), then 0 for
// its all-pad rows, at shape.length positions -- what the static path's exchange buffers are
// sized from (RouteContext::rank_shares). Empty when the batch carries no lengths.
std::vector<std::vector<RankShare>> GraphRankShares(const Batch& batch, const GraphShape& whole,
                                                    int64_t micro_batches, int world);

// Why captured steps cannot run on NCCL ranks in this environment ("" when they can): with
// PyTorch's blocking wait (TORCH_NCCL_BLOCKING_WAIT, or its old name NCCL_BLOCKING_WAIT, set to
// 1), every wait for a collective polls the collective's CUDA event from the host, which a
// stream being captured does not allow.
std::string GraphRankEnvProblem();

class StepGraphs {
 public:
  // capture: capture and replay CUDA graphs (a CUDA device and build); false: every step runs
  // eagerly, the rest alike (the CPU; tests comparing the two).
  StepGraphs(Training& t, bool capture);
  ~StepGraphs();
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Training step `step` on `batch` (the step's whole batch, every rank's sentences, on the
  // host), as TrainStep on this process's share of it.
  StepValues Step(const Batch& batch, int64_t step);

  struct Counts {
    int64_t shapes = 0;    // graph shapes seen
    int64_t eager = 0;     // steps run eagerly (warm-up, metric steps, or capture off)
    int64_t captures = 0;  // graphs captured (each replayed at once for its step)
    int64_t replays = 0;   // steps replayed from a graph captured at an earlier step
  };
  const Counts& counts() const { return counts_; }

 private:
  struct Graph;
  Graph& GraphOf(const GraphShape& shape);
  void RunEager(Graph& g, int64_t step, bool statistics, StepValues& v);
  void Warm(Graph& g, const GraphShape& shape, int64_t step, StepValues& v);
  // This process's warm-up failure (empty: none), or on ranks the failure of any rank
  // (Note [Warm-up verdicts on ranks]).
  std::string RanksAgree(const std::string& failure) const;
  void Capture(Graph& g, int64_t step, StepValues& v);
  void Replay(Graph& g, int64_t step, StepValues& v);

  Training& t_;
  bool capture_;
  std::map<GraphShape, std::unique_ptr<Graph>> graphs_;
  std::vector<std::vector<RankShare>> shares_;  // this step's GraphRankShares (ranks)
  Counts counts_;
  struct Cuda;  // the side stream and the graphs' shared memory pool (CUDA builds)
  std::unique_ptr<Cuda> cuda_;
};

}  // namespace moebench
