// What the trainer does differently when its Comm is a process group (one rank per worker):
// sharding the experts, the data-parallel gradient all-reduce, the global gradient norm, and
// summing what each rank measured. See Note [Expert parallelism] in harness/moe/moe_layer.cpp.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "harness/comm/comm.h"
#include "harness/comm/local_comm.h"
#include "harness/model/transformer.h"
#include "harness/train/data_pipeline.h"
#include "methods/router.h"

namespace moebench {

struct ParamSplit {
  std::vector<at::Tensor> dense;   // replicated on every rank: gradients are all-reduced
  std::vector<at::Tensor> expert;  // this rank's experts: gradients arrive by all-to-all
};

// Trainable parameters, split. The order is the model's, the same on every rank.
ParamSplit SplitParams(const Transformer& model);

// Rank r keeps experts [r*E/W, (r+1)*E/W) of every MoE layer (as they were initialised).
void ShardExperts(Transformer& model, const Comm& comm);

// Rows [B*r/W, B*(r+1)/W) of the batch: rank r's sentences (the tokens of virtual worker r).
// ntokens stays the whole batch's, so that the per-rank losses add up to the batch loss.
Batch RankSlice(const Batch& batch, int rank, int world);

// Note [Gradient accumulation]: with grad_accum = A > 1 a step's batch (tokens_per_batch
// padded tokens, this process's share of it) runs as A micro-batches, each a forward and
// backward whose gradients add up before the one all-reduce, clipping and optimizer update.
// Micro-batch i holds chunk i of every worker block's sentences (blocks as Note [Token blocks]
// cuts a batch: W for one process playing W workers, 1 for a rank, whose share is one block),
// so every worker routes tokens in every micro-batch; each is trimmed to its longest sentences.
// The cross entropy stays normalised by the step's target tokens (as RankSlice keeps it), so
// its gradient is the whole batch's, and every auxiliary loss is weighted 1/A (the mean over
// micro-batches, as Megatron-Core scales its losses by the number of micro-batches). Routing
// decisions -- capacities, drops, balanced assignments -- are taken per micro-batch, as on a
// device that holds only a micro-batch; a method without capacity or batch-level routing
// (dense, smoe_dropout) gets the whole batch's gradient to rounding (Training.GradAccum*).
// Throws, naming the knob, when a worker block has fewer than A sentences.
std::vector<Batch> MicroBatches(const Batch& batch, int64_t micro_batches, int blocks);
// The rows (sentences of a batch of b) MicroBatches puts in each micro-batch, by worker block:
// [micro-batch][block]. Throws as MicroBatches does.
std::vector<std::vector<std::vector<int64_t>>> MicroBatchBlockRows(int64_t b, int64_t micro_batches,
                                                                   int blocks);

// Every rank's share of each micro-batch of the step's whole `batch` ([micro-batch][rank]), as
// RankSlice and MicroBatches cut it, in lengths: what each rank's static-shape MoE layers need
// to size the other ranks' buffers (RouteContext::rank_shares). Empty when the batch carries no
// lengths or has fewer sentences than ranks (RankSlice refuses it).
std::vector<std::vector<RankShare>> RankShares(const Batch& batch, int world,
                                               int64_t micro_batches);

// Sums the dense gradients over ranks in flat buckets of at most `bucket_bytes` (parameters
// without a gradient this step are left out, on every rank alike), and meters the ring all-reduce W
// workers would run: for a process group it runs it; for one process playing W workers it only
// counts it (calls = buckets, 0 ms), so both report the same bytes. Returns the number of buckets.
int64_t AllReduceDenseGrads(Comm& comm, const std::vector<at::Tensor>& dense, int64_t bucket_bytes);

// Clips all gradients by their global L2 norm (dense once, experts summed over ranks) to
// max_norm; returns the norm before clipping, a 0-dim double on the gradients' device (nothing
// is read from the device: Note [Replayable optimizer step]).
at::Tensor ClipGlobalGradNorm(Comm& comm, const ParamSplit& params, double max_norm);

// Sums values over ranks (identity for one process).
std::vector<double> SumOverRanks(Comm& comm, const std::vector<double>& values);
// The mean over ranks (identity for one process).
double MeanOverRanks(Comm& comm, double value);

// The sentences of the batch this process trains on: all of them for one process playing every
// worker, RankSlice for a rank.
Batch ThisProcessShare(Batch batch, const Comm& comm);

// Where this process keeps its checkpoint in `run_dir`: checkpoint.pt for one process, one
// file per rank (checkpoint.rank<r>-of-<W>.pt) for a process group.
std::string CheckpointPath(const std::string& run_dir, const Comm& comm);

// The step to resume from: for one process, `current` (its checkpoint's step, -1 for none);
// for ranks, each keeping its current and previous checkpoint, the newest step every rank has
// (so a crash between two ranks' saves costs one interval), -1 when they share none. `*use_prev`
// says whether this rank finds that step in its previous checkpoint.
int64_t CommonResumeStep(Comm& comm, int64_t current, int64_t previous, bool* use_prev);

// Sums drained byte counters over ranks (each rank counted what it sent, or on the static MoE
// path its own tokens' rows both ways: the same sums); calls are the same
// on every rank and kept once; the modeled time was counted by rank 0 alone; measured ms is the
// mean over ranks.
void ReduceCounters(Comm& comm, std::map<std::pair<int, std::string>, CommCounters>& drained);

// Sums the MoE layers' last routing statistics over ranks.
void ReduceLayerStats(Comm& comm, Transformer& model);

// While alive, every MoE layer of a rank evaluates with all experts gathered from the ranks
// and one local process playing every worker (no collectives while decoding).
class GatheredExperts {
 public:
  GatheredExperts(Transformer& model, Comm& comm);
  ~GatheredExperts();
  GatheredExperts(const GatheredExperts&) = delete;
  GatheredExperts& operator=(const GatheredExperts&) = delete;

 private:
  Transformer model_;
  std::unique_ptr<LocalComm> local_;
};

}  // namespace moebench
