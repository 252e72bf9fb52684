#include "harness/train/expert_parallel.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <stdexcept>
#include <tuple>
#include "harness/train/device.h"
#include "harness/util/time.h"

namespace moebench {

namespace {

at::Tensor ToDouble(const std::vector<double>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble));
}

}  // namespace

ParamSplit SplitParams(const Transformer& model) {
  std::set<const void*> expert_ptrs;
  for (const auto& layer : model->MoeLayers()) {
    for (const auto& p : layer->experts().parameters()) expert_ptrs.insert(p.unsafeGetTensorImpl());
  }
  ParamSplit out;
  for (const auto& p : model->parameters()) {
    if (!p.requires_grad()) continue;
    (expert_ptrs.count(p.unsafeGetTensorImpl()) ? out.expert : out.dense).push_back(p);
  }
  return out;
}

void ShardExperts(Transformer& model, const Comm& comm) {
  const int w = comm.size();
  for (auto& layer : model->MoeLayers()) {
    const int64_t e = layer->options().num_experts;
    if (e % w != 0) {
      throw std::invalid_argument("expert parallelism: " + std::to_string(e) +
                                  " experts do not split over " + std::to_string(w) + " ranks");
    }
    layer->KeepExperts(comm.rank() * (e / w), e / w);
  }
}

Batch RankSlice(const Batch& batch, int rank, int world) {
  const int64_t b = batch.src.size(0);
  if (b < world) {
    throw std::runtime_error("a batch of " + std::to_string(b) +
                             " sentences cannot be split over " + std::to_string(world) +
                             " ranks: raise tokens_per_batch or lower the world size");
  }
  const int64_t b0 = b * rank / world, b1 = b * (rank + 1) / world;
  Batch out;
  out.src = batch.src.narrow(0, b0, b1 - b0);
  out.tgt_in = batch.tgt_in.narrow(0, b0, b1 - b0);
  out.tgt_out = batch.tgt_out.narrow(0, b0, b1 - b0);
  out.rows.assign(batch.rows.begin() + b0, batch.rows.begin() + b1);
  if (!batch.src_lengths.empty()) {
    out.src_lengths.assign(batch.src_lengths.begin() + b0, batch.src_lengths.begin() + b1);
    out.tgt_lengths.assign(batch.tgt_lengths.begin() + b0, batch.tgt_lengths.begin() + b1);
  }
  out.ntokens = batch.ntokens;
  out.ntokens_tensor = batch.ntokens_tensor;
  return out;
}

std::vector<std::vector<std::vector<int64_t>>> MicroBatchBlockRows(int64_t b, int64_t micro_batches,
                                                                   int blocks) {
  std::vector<std::vector<std::vector<int64_t>>> rows(static_cast<size_t>(micro_batches),
                                                      std::vector<std::vector<int64_t>>(blocks));
  for (int w = 0; w < blocks; ++w) {
    const int64_t b0 = b * w / blocks, len = b * (w + 1) / blocks - b0;
    if (len < micro_batches) {
      throw std::runtime_error("grad_accum " + std::to_string(micro_batches) + ": a worker's " +
                               std::to_string(len) + " sentences of the step's batch cannot " +
                               "be split into " + std::to_string(micro_batches) +
                               " micro-batches: raise tokens_per_batch or lower grad_accum");
    }
    for (int64_t i = 0; i < micro_batches; ++i) {
      for (int64_t r = b0 + len * i / micro_batches; r < b0 + len * (i + 1) / micro_batches; ++r) {
        rows[static_cast<size_t>(i)][static_cast<size_t>(w)].push_back(r);
      }
    }
  }
  return rows;
}

namespace {

// The sentences (rows of a batch of b) of each micro-batch, block after block.
std::vector<std::vector<int64_t>> MicroBatchRows(int64_t b, int64_t micro_batches, int blocks) {
  std::vector<std::vector<int64_t>> rows;
  for (const auto& by_block : MicroBatchBlockRows(b, micro_batches, blocks)) {
    rows.emplace_back();
    for (const auto& r : by_block) rows.back().insert(rows.back().end(), r.begin(), r.end());
  }
  return rows;
}

// The padded lengths of a micro-batch of these sentences: its longest (at least 1).
std::pair<int64_t, int64_t> TrimmedLengths(const Batch& batch, const std::vector<int64_t>& rows) {
  int64_t src_len = 1, tgt_len = 1;
  for (int64_t i : rows) {
    src_len = std::max(src_len, batch.src_lengths[static_cast<size_t>(i)]);
    tgt_len = std::max(tgt_len, batch.tgt_lengths[static_cast<size_t>(i)]);
  }
  return {src_len, tgt_len};
}

}  // namespace

std::vector<Batch> MicroBatches(const Batch& batch, int64_t micro_batches, int blocks) {
  if (micro_batches <= 1) return {batch};
  const int64_t b = batch.src.size(0);
  const std::vector<std::vector<int64_t>> rows = MicroBatchRows(b, micro_batches, blocks);
  const bool lengths = !batch.src_lengths.empty();
  std::vector<Batch> out;
  for (const std::vector<int64_t>& r : rows) {
    Batch m;
    const at::Tensor index =
        OnDevice(at::tensor(r, at::TensorOptions().dtype(at::kLong)), batch.src.device());
    int64_t src_len = batch.src.size(1), tgt_len = batch.tgt_in.size(1);
    if (lengths) {
      for (int64_t i : r) {
        m.src_lengths.push_back(batch.src_lengths[static_cast<size_t>(i)]);
        m.tgt_lengths.push_back(batch.tgt_lengths[static_cast<size_t>(i)]);
      }
      std::tie(src_len, tgt_len) = TrimmedLengths(batch, r);
    }
    // Right-padded sentences: the columns past the longest one are padding only.
    m.src = batch.src.index_select(0, index).narrow(1, 0, src_len);
    m.tgt_in = batch.tgt_in.index_select(0, index).narrow(1, 0, tgt_len);
    m.tgt_out = batch.tgt_out.index_select(0, index).narrow(1, 0, tgt_len);
    for (int64_t i : r) m.rows.push_back(batch.rows[static_cast<size_t>(i)]);
    m.ntokens = batch.ntokens;  // the step's normaliser (Note [Gradient accumulation])
    m.ntokens_tensor = batch.ntokens_tensor;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::vector<RankShare>> RankShares(const Batch& batch, int world,
                                               int64_t micro_batches) {
  const int64_t b = batch.src.size(0);
  if (batch.src_lengths.empty() || b < world) return {};  // RankSlice refuses the latter
  const int64_t a = std::max<int64_t>(1, micro_batches);
  std::vector<std::vector<RankShare>> out(static_cast<size_t>(a),
                                          std::vector<RankShare>(static_cast<size_t>(world)));
  for (int h = 0; h < world; ++h) {
    const int64_t b0 = b * h / world, b1 = b * (h + 1) / world;
    // The rank's micro-batches as MicroBatches cuts its share (one block), as rows of `batch`.
    std::vector<std::vector<int64_t>> rows = MicroBatchRows(b1 - b0, a, 1);
    for (auto& mb : rows) {
      for (int64_t& r : mb) r += b0;
    }
    for (int64_t i = 0; i < a; ++i) {
      RankShare& s = out[static_cast<size_t>(i)][static_cast<size_t>(h)];
      for (int64_t r : rows[static_cast<size_t>(i)]) {
        s.src_lengths.push_back(batch.src_lengths[static_cast<size_t>(r)]);
        s.tgt_lengths.push_back(batch.tgt_lengths[static_cast<size_t>(r)]);
      }
      if (a == 1) {  // MicroBatches keeps one micro-batch untrimmed
        s.src_len = batch.src.size(1);
        s.tgt_len = batch.tgt_in.size(1);
      } else {
        std::tie(s.src_len, s.tgt_len) = TrimmedLengths(batch, rows[static_cast<size_t>(i)]);
      }
    }
  }
  return out;
}

int64_t AllReduceDenseGrads(Comm& comm, const std::vector<at::Tensor>& dense,
                            int64_t bucket_bytes) {
  const Topology& topo = comm.topology();
  if (topo.workers <= 1) return 0;
  const bool real = !comm.plays_all_workers();
  int64_t buckets = 0, total_bytes = 0;
  double ms = 0;
  // Parameters this step did not use (e.g. a router on a gate-expert-drop step) keep no
  // gradient, as in one process; the ranks agree on which those are (routing decisions that
  // skip a layer are shared).
  std::vector<at::Tensor> used;
  for (const auto& p : dense) {
    if (p.grad().defined()) used.push_back(p);
  }
  size_t i = 0;
  while (i < used.size()) {
    std::vector<at::Tensor> group;
    int64_t bytes = 0;
    while (i < used.size() &&
           (group.empty() || bytes + static_cast<int64_t>(used[i].nbytes()) <= bucket_bytes)) {
      bytes += static_cast<int64_t>(used[i].nbytes());
      group.push_back(used[i]);
      ++i;
    }
    ++buckets;
    total_bytes += bytes;
    if (!real) continue;
    std::vector<at::Tensor> flat;
    flat.reserve(group.size());
    for (const auto& p : group) flat.push_back(p.grad().reshape({-1}));
    at::Tensor bucket = at::cat(flat);
    const double t0 = SteadyNowMs();
    comm.AllReduceSum(bucket);
    ms += SteadyNowMs() - t0;
    int64_t off = 0;
    for (auto& p : group) {
      const int64_t n = p.numel();
      p.mutable_grad().copy_(bucket.narrow(0, off, n).view_as(p));
      off += n;
    }
  }
  if (buckets > 0) {
    comm.meter().RecordAllReduce(topo, total_bytes, buckets, ms, real ? comm.rank() : -1);
  }
  return buckets;
}

at::Tensor ClipGlobalGradNorm(Comm& comm, const ParamSplit& params, double max_norm) {
  // On the gradients' device, read by nobody here (Note [Replayable optimizer step]): each
  // parameter's fp32 sum of squares is widened to fp64 before it is added, as a host-side sum
  // would, and the clipping factor is min(1, max_norm / (norm + 1e-6)).
  at::Device device = at::kCPU;
  for (const auto* ps : {&params.dense, &params.expert}) {
    if (!ps->empty()) device = ps->front().device();
  }
  auto sq = [&](const std::vector<at::Tensor>& ps) {
    at::Tensor s = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
    for (const auto& p : ps) {
      if (p.grad().defined()) s.add_(p.grad().pow(2).sum().to(at::kDouble));
    }
    return s;
  };
  at::NoGradGuard no_grad;
  const at::Tensor dense = sq(params.dense);
  at::Tensor expert = sq(params.expert);
  if (!comm.plays_all_workers()) comm.AllReduceSum(expert);
  const at::Tensor norm = (dense + expert).sqrt();
  const at::Tensor coef = (max_norm / (norm + 1e-6)).clamp_max(1.0);
  for (const auto* ps : {&params.dense, &params.expert}) {
    for (const auto& p : *ps) {
      if (p.grad().defined()) p.grad().mul_(coef);
    }
  }
  return norm;
}

std::vector<double> SumOverRanks(Comm& comm, const std::vector<double>& values) {
  if (comm.plays_all_workers() || values.empty()) return values;
  at::Tensor t = ToDouble(values);
  comm.AllReduceSum(t);
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

double MeanOverRanks(Comm& comm, double value) {
  if (comm.plays_all_workers()) return value;
  return SumOverRanks(comm, {value})[0] / comm.size();
}

Batch ThisProcessShare(Batch batch, const Comm& comm) {
  if (comm.plays_all_workers()) return batch;
  return RankSlice(batch, comm.rank(), comm.size());
}

std::string CheckpointPath(const std::string& run_dir, const Comm& comm) {
  if (comm.plays_all_workers()) return run_dir + "/checkpoint.pt";
  return run_dir + "/checkpoint.rank" + std::to_string(comm.rank()) + "-of-" +
         std::to_string(comm.size()) + ".pt";
}

int64_t CommonResumeStep(Comm& comm, int64_t current, int64_t previous, bool* use_prev) {
  *use_prev = false;
  if (comm.plays_all_workers()) return current;
  const at::Tensor all =
      comm.AllGather(at::tensor(std::vector<int64_t>{current, previous})).contiguous();
  const int64_t* a = all.data_ptr<int64_t>();
  int64_t common = -1;
  for (int64_t candidate : {current, previous}) {
    bool everyone = candidate >= 0;
    for (int r = 0; r < comm.size() && everyone; ++r) {
      everyone = a[2 * r] == candidate || a[2 * r + 1] == candidate;
    }
    if (everyone) common = std::max(common, candidate);
  }
  *use_prev = common >= 0 && common != current;
  return common;
}

void ReduceCounters(Comm& comm, std::map<std::pair<int, std::string>, CommCounters>& drained) {
  if (comm.plays_all_workers()) return;
  const int w = comm.size();
  const double n_keys = static_cast<double>(drained.size());
  const std::vector<double> check = SumOverRanks(comm, {n_keys, n_keys * n_keys});
  if (check[0] != n_keys * w || check[1] != n_keys * n_keys * w) {
    throw std::runtime_error("ranks disagree on which collectives ran since the last log step");
  }
  std::vector<double> flat;
  for (const auto& [key, c] : drained) {
    flat.push_back(static_cast<double>(c.calls));
    for (int k = 0; k < kNumTrafficClasses; ++k) flat.push_back(static_cast<double>(c.logical[k]));
    for (int k = 0; k < kNumTrafficClasses; ++k) flat.push_back(static_cast<double>(c.wire[k]));
    flat.push_back(c.ms);
    flat.push_back(c.modeled_ms);
  }
  const std::vector<double> sum = SumOverRanks(comm, flat);
  size_t i = 0;
  for (auto& [key, c] : drained) {
    c.calls = static_cast<int64_t>(std::llround(sum[i++] / w));
    for (int k = 0; k < kNumTrafficClasses; ++k) c.logical[k] = std::llround(sum[i++]);
    for (int k = 0; k < kNumTrafficClasses; ++k) c.wire[k] = std::llround(sum[i++]);
    c.ms = sum[i++] / w;
    c.modeled_ms = sum[i++];  // counted on rank 0 only (see CommCounters)
  }
}

void ReduceLayerStats(Comm& comm, Transformer& model) {
  if (comm.plays_all_workers()) return;
  std::vector<double> flat;
  auto layers = model->MoeLayers();
  for (const auto& layer : layers) {
    const MoeLayerStats& s = layer->last_stats();
    flat.insert(
        flat.end(),
        {static_cast<double>(s.real_tokens), static_cast<double>(s.choices),
         static_cast<double>(s.dropped), s.entropy_sum, static_cast<double>(s.rows),
         static_cast<double>(s.rows_cross_worker), static_cast<double>(s.tokens_per_expert.size()),
         static_cast<double>(s.losses.size()), static_cast<double>(s.router_stats.size()),
         static_cast<double>(s.other_node_copies)});
    // The most nodes a token reaches, at this rank's position: the sum over ranks gives every
    // rank's value, and the layer's is their maximum.
    for (int r = 0; r < comm.size(); ++r) {
      flat.push_back(r == comm.rank() ? static_cast<double>(s.nodes_per_token_max) : 0.0);
    }
    for (int64_t n : s.tokens_per_expert) flat.push_back(static_cast<double>(n));
    for (const auto& [name, v] : s.losses) flat.push_back(v);
    for (const auto& [name, v] : s.router_stats) flat.push_back(v);
  }
  const std::vector<double> sum = SumOverRanks(comm, flat);
  const int w = comm.size();
  size_t i = 0;
  for (auto& layer : layers) {
    MoeLayerStats& s = layer->mutable_stats();
    s.real_tokens = std::llround(sum[i++]);
    s.choices = std::llround(sum[i++]);
    s.dropped = std::llround(sum[i++]);
    s.entropy_sum = sum[i++];
    s.rows = std::llround(sum[i++]);
    s.rows_cross_worker = std::llround(sum[i++]);
    const double n_experts = sum[i++], n_losses = sum[i++], n_router = sum[i++];
    s.other_node_copies = std::llround(sum[i++]);
    s.nodes_per_token_max = 0;
    for (int r = 0; r < w; ++r) {
      s.nodes_per_token_max = std::max<int64_t>(s.nodes_per_token_max, std::llround(sum[i++]));
    }
    if (n_experts != static_cast<double>(s.tokens_per_expert.size()) * w ||
        n_losses != static_cast<double>(s.losses.size()) * w ||
        n_router != static_cast<double>(s.router_stats.size()) * w) {
      throw std::runtime_error("ranks disagree on the routing statistics of MoE layer " +
                               std::to_string(layer->options().index));
    }
    for (auto& n : s.tokens_per_expert) n = std::llround(sum[i++]);
    for (auto& [name, v] : s.losses) v = sum[i++];
    for (auto& [name, v] : s.router_stats) v = sum[i++];
    s.entropy = s.real_tokens > 0 ? s.entropy_sum / static_cast<double>(s.real_tokens) : 0;
  }
}

GatheredExperts::GatheredExperts(Transformer& model, Comm& comm) : model_(model) {
  if (comm.plays_all_workers()) return;
  local_ = std::make_unique<LocalComm>(comm.topology());
  at::NoGradGuard no_grad;
  for (auto& layer : model_->MoeLayers()) {
    const Experts& ex = layer->experts();
    auto gather = [&](const at::Tensor& t) {
      at::Tensor g = comm.AllGather(t.detach());  // [W, E_loc, ...]
      std::vector<int64_t> shape = t.sizes().vec();
      shape[0] *= comm.size();
      return g.reshape(shape);
    };
    auto all =
        std::make_shared<Experts>(gather(ex.w1), gather(ex.b1), gather(ex.w2), gather(ex.b2));
    layer->SetEvalReplica(all, local_.get());
  }
}

GatheredExperts::~GatheredExperts() {
  if (!local_) return;
  for (auto& layer : model_->MoeLayers()) layer->SetEvalReplica(nullptr, nullptr);
}

}  // namespace moebench
