// The MoE layer: router -> index dispatch -> exchange -> local experts -> exchange back ->
// weighted combine. With a LocalComm this process plays every worker (Note [Token blocks]).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "harness/comm/comm.h"
#include "harness/moe/exchange_plan.h"
#include "harness/moe/experts.h"
#include "harness/moe/static_exchange.h"
#include "methods/router.h"

namespace moebench {

struct MoeLayerOptions {
  int index = 0;  // MoE layer index over the model
  bool decoder = false;
  int64_t d_model = 0;
  int64_t d_hidden = 0;
  int64_t num_experts = 0;
  // Width of the shared experts' FFN, which every token passes through on its own worker
  // (Note [Shared and fine-grained experts] in harness/model/expert_layout.h); 0: none.
  int64_t shared_hidden = 0;
  // padded | compact (ExchangeFormat, parsed once by the layer); Note [Logical and wire bytes]
  std::string exchange = "padded";
  // The static-shape path for training forwards (run-spec field moe_path = static; Note
  // [Static-shape path] in static_path.cpp): capacity-bounded routing and the padded exchange, on
  // one process or a rank, no host read. Evaluation and decoding take the dynamic path.
  bool static_shapes = false;
};

// What the last training forward did, for per-layer routing metrics.
struct MoeLayerStats {
  std::vector<int64_t> tokens_per_expert;  // kept assignments per expert
  int64_t real_tokens = 0;
  int64_t choices = 0;     // (token, choice) pairs before capacity
  int64_t dropped = 0;     // pairs removed by capacity
  double entropy = 0;      // mean router entropy over real tokens (nats); 0 without a router
  double entropy_sum = 0;  // its numerator (summed over ranks before the mean is taken)
  int64_t rows = 0;        // assignments computed by experts
  int64_t rows_cross_worker = 0;
  // Node reach (Note [Node copies]; counted when the topology has more than one node):
  // distinct (token, other node) pairs of the kept rows, and the most distinct nodes any one
  // token's kept rows reach.
  bool node_counts = false;
  int64_t other_node_copies = 0;
  int64_t nodes_per_token_max = 0;
  std::map<std::string, double> losses;        // unscaled aux losses, averaged over groups
  std::map<std::string, double> router_stats;  // Routing::stats, averaged over groups
  bool exchange_skipped = false;
  bool experts_skipped = false;
  // False: the forward was asked for no statistics (RouteContext::statistics): entropy and node
  // copies were not computed (0 here); counts, losses and rows are.
  bool statistics = true;
};

// The assignments of the last forward over all tokens of all workers; slots are made unique
// per expert across groups (slot + group * capacity), so the einsum oracle can replay them.
struct LayerAssignments {
  at::Tensor token, expert, slot, weight;
  int64_t capacity = 0;
};

class MoeLayerImpl : public torch::nn::Module {
 public:
  MoeLayerImpl(MoeLayerOptions opt, std::shared_ptr<Router> router, Comm* comm);
  // x: [T, d] tokens (flattened batch), pad: [T] bool (true = real token) or undefined.
  // Returns the routed experts' combine plus the shared experts' output (when there are any).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx);

  at::Tensor aux_loss() const { return aux_; }  // weighted sum, scalar; zero if none
  // Reading the statistics copies their device part to the host (Note [Host
  // synchronisation]).
  const MoeLayerStats& last_stats() const {
    Materialize();
    return stats_;
  }
  const LayerAssignments& last_assignments() const { return assignments_; }
  // Forward FLOPs spent (on the kept rows), cumulative. The static path counts them on the
  // device: they arrive with FlushDeviceTally.
  double expert_flops() const { return expert_flops_; }
  // The same by worker (cumulative; Note [Compute model]): the FLOPs of the rows each worker's
  // experts computed. On ranks each rank holds a part, which the trainer sums: the dynamic path
  // this rank's experts' rows, the static path its own tokens' rows by computing worker.
  const std::vector<double>& expert_flops_by_worker() const { return expert_flops_by_worker_; }
  const MoeLayerOptions& options() const { return opt_; }
  Router& router() { return *router_; }
  Experts& experts() const { return *experts_; }
  // The shared experts as one FFN (one Experts entry of width shared_hidden); null: none. Not
  // expert parameters: replicated, their gradients all-reduced like the attention's.
  Experts* shared() const { return shared_.get(); }
  Comm& comm() const { return *comm_; }
  MoeLayerStats& mutable_stats() {
    Materialize();
    return stats_;
  }
  // What the static path counted on the device since the last call (Note [Static-shape
  // path]): its exchanges' logical bytes go to the meter, its rows to the expert FLOPs. One
  // host read when there is something to flush; the trainer calls it when it closes a metric
  // window, before it drains the meter.
  void FlushDeviceTally();

  // Expert parallelism over a process group (Note [Expert parallelism]): keeps experts
  // [first, first + count) of the E this layer was built with, as they were initialised.
  void KeepExperts(int64_t first, int64_t count);
  int64_t first_expert() const { return first_expert_; }
  // Evaluation on a rank: route and compute as one process playing every worker, with a
  // gathered copy of all experts (no collectives while decoding). Cleared by passing nullptrs.
  void SetEvalReplica(std::shared_ptr<Experts> all, Comm* local);

 private:
  // Statistics still on the device: scalars, summed over the layer's groups.
  struct PendingStats {
    at::Tensor real_tokens, entropy_sum;
    std::map<std::string, at::Tensor> losses;
    at::Tensor choices, dropped;  // deferred routers' counts on ranks (else in the stats)
    at::Tensor other_node_copies, nodes_per_token_max;  // Note [Node copies]
    // The static path: kept rows per (group, expert) [groups * E] of groups first_group..,
    // read into the statistics' tokens per expert (and rows, cross-worker rows unless the
    // experts were skipped). One process: all W groups; a rank: its own.
    at::Tensor group_expert;
    int first_group = 0;
    bool waiting = false;
  };
  // The routings of one forward's groups: every worker's block of tokens on one process, this
  // rank's tokens (group = its rank) on a rank of a process group.
  struct RoutedGroups {
    std::vector<int> groups;           // the group (worker) of each routing
    std::vector<Routing> routings;     // lists may be deferred until the split sizes are read
    std::vector<int64_t> real_tokens;  // each group's, when known on the host (else -1)
    bool statistics = true;            // RouteContext::statistics
    bool skip_exchange = false;
    bool skip_experts = false;
  };
  // Routes the groups (rank < 0: all W of them, else group `rank` alone), sets aux_ (the
  // groups' losses averaged over W) and adds the routing statistics to stats and pending.
  RoutedGroups RouteGroups(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx,
                           const Topology& topo, int rank, MoeLayerStats& stats,
                           PendingStats& pending);
  // The routed rows per worker, the cross-worker rows and the expert FLOPs of this process's
  // workers (on a rank: its own only; the trainer sums ranks).
  void CountRows(const ExchangePlan& plan, const std::vector<int>& groups, int workers, int rank,
                 MoeLayerStats& stats);
  void CheckRankExperts(int rank, int workers) const;
  void Publish(const MoeLayerStats& stats, PendingStats pending);
  void AddWorkerExpertFlops(const std::vector<int64_t>& rows_per_worker);
  void Materialize() const;
  at::Tensor RoutedForward(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx);
  at::Tensor StaticForward(const at::Tensor& xc, const RoutedGroups& routed,
                           const RouteContext& ctx, int rank, MoeLayerStats& stats,
                           PendingStats& pending);
  // The static path on a rank: every rank's group capacity (from RouteContext::rank_shares and
  // the router's CapacityFor), checked against this rank's own routing.
  std::vector<int64_t> RankCapacities(const RouteContext& ctx, const RoutedGroups& routed, int rank,
                                      int64_t t) const;

  MoeLayerOptions opt_;
  ExchangeFormat format_ = ExchangeFormat::kPadded;  // opt_.exchange, parsed
  std::shared_ptr<Router> router_;
  std::shared_ptr<Experts> experts_;
  std::shared_ptr<Experts> shared_;
  Comm* comm_;
  int64_t first_expert_ = 0;
  std::shared_ptr<Experts> replica_;
  Comm* replica_comm_ = nullptr;
  at::Tensor aux_;
  mutable MoeLayerStats stats_;
  mutable PendingStats pending_;
  LayerAssignments assignments_;
  double expert_flops_ = 0;
  std::vector<double> expert_flops_by_worker_;
  StaticTally tally_;
};

TORCH_MODULE(MoeLayer);

}  // namespace moebench
