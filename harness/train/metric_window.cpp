#include "harness/train/metric_window.h"

#include <algorithm>
#include <cmath>

#include "harness/train/run_metrics.h"

namespace moebench {

void MetricWindow::Add(const StepValues& v) {
  loss_ += v.ce;
  nll_ += v.nll;
  aux_ += v.aux;
  seconds_ += v.seconds;
  tokens_ += v.tokens;
  steps_ += 1;
  grad_norm_ = v.grad_norm;
  lr_ = v.lr;
  for (const auto& [k, x] : v.metrics) extra_[k] += x;
  nonexpert_flops_ += v.nonexpert_flops;
  for (size_t i = 0; i < v.expert_flops.size() && i < expert_flops_.size(); ++i) {
    expert_flops_[i] += v.expert_flops[i];
  }
  layer_expert_flops_.resize(v.layer_expert_flops.size(), 0.0);
  for (size_t i = 0; i < v.layer_expert_flops.size(); ++i) {
    layer_expert_flops_[i] += v.layer_expert_flops[i];
  }
}

void MetricWindow::AddDeviceTallies(Training& t) {
  std::vector<MoeLayer> layers = t.model->MoeLayers();
  const std::vector<double> before = t.model->expert_forward_flops_by_worker();
  layer_expert_flops_.resize(std::max(layer_expert_flops_.size(), layers.size()), 0.0);
  for (size_t i = 0; i < layers.size(); ++i) {
    const double f0 = layers[i]->expert_flops();
    layers[i]->FlushDeviceTally();
    layer_expert_flops_[i] += layers[i]->expert_flops() - f0;
  }
  const std::vector<double> after = t.model->expert_forward_flops_by_worker();
  for (size_t i = 0; i < after.size() && i < expert_flops_.size(); ++i) {
    expert_flops_[i] += after[i] - (i < before.size() ? before[i] : 0.0);
  }
}

WindowRows MetricWindow::Close(int64_t step, double wall, Training& t, const std::string& run_id) {
  Comm& comm = *t.comm;
  AddDeviceTallies(t);
  // Each rank saw its own sentences, counted its own batch slice and the rows its own experts
  // computed: the window is summed over ranks (identities for one process).
  {
    std::vector<double> v = {loss_, nll_, aux_};
    for (const auto& [k, x] : extra_) v.push_back(x);
    v.push_back(nonexpert_flops_);
    v.insert(v.end(), expert_flops_.begin(), expert_flops_.end());
    v.insert(v.end(), layer_expert_flops_.begin(), layer_expert_flops_.end());
    v = SumOverRanks(comm, v);
    size_t i = 0;
    loss_ = v[i++];
    nll_ = v[i++];
    aux_ = v[i++];
    for (auto& [k, x] : extra_) x = v[i++];
    nonexpert_flops_ = v[i++];
    for (double& f : expert_flops_) f = v[i++];
    for (double& f : layer_expert_flops_) f = v[i++] / steps_;
    seconds_ = MeanOverRanks(comm, seconds_);
  }
  const double ntok = static_cast<double>(std::max<int64_t>(tokens_, 1));
  const double steps = static_cast<double>(steps_);
  WindowRows out;
  out.tokens_per_second = tokens_ / std::max(seconds_, 1e-9);
  out.train_loss = loss_ / ntok;
  std::vector<MetricRow>& m = out.metrics;
  m = {
      {step, wall, "train_loss", loss_ / ntok},
      {step, wall, "train_nll", nll_ / ntok},
      {step, wall, "train_ppl", std::exp(nll_ / ntok)},
      {step, wall, "aux_loss", aux_ / steps},
      {step, wall, "lr", lr_},
      {step, wall, "grad_norm", grad_norm_},
      {step, wall, "tokens_per_s", out.tokens_per_second},
      {step, wall, "step_ms", 1000.0 * seconds_ / steps},
  };
  for (const auto& [k, v] : extra_) m.push_back({step, wall, k, v / steps});
  auto drained = comm.meter().Drain();
  ReduceCounters(comm, drained);
  ReduceLayerStats(comm, t.model);
  for (auto& r : CommMetrics(step, wall, steps_, drained)) m.push_back(r);
  // Measured here, per step: compute = step - measured communication. Modeled on the cluster,
  // per step: the FLOPs on the device profile plus the modeled communication (Note [Compute
  // model], Note [Network model]).
  double comm_ms = 0, modeled_ms = 0;
  for (const auto& [key, c] : drained) {
    comm_ms += c.ms;
    modeled_ms += c.modeled_ms;
  }
  m.push_back({step, wall, "compute_ms", 1000.0 * seconds_ / steps - comm_ms / steps});
  const int n_workers = static_cast<int>(expert_flops_.size());
  double expert_flops = 0;
  std::vector<double> per_worker(n_workers, 0.0);
  for (int i = 0; i < n_workers; ++i) {
    expert_flops += expert_flops_[i];
    per_worker[i] =
        kTrainingFlopsPerForward * (nonexpert_flops_ / n_workers + expert_flops_[i]) / steps;
  }
  const double flops = kTrainingFlopsPerForward * (nonexpert_flops_ + expert_flops) / steps;
  const double compute_modeled_s =
      ModeledComputeSeconds(per_worker, *t.device_profile, t.spec.device_efficiency);
  const double comm_modeled_s = modeled_ms / steps / 1000.0;
  m.push_back({step, wall, "flops_per_step", flops});
  // Note [MFU]: the step's model FLOPs (summed over ranks above) over the measured step, against
  // the peak of the devices that ran it: one for one process, one per rank on ranks.
  const double step_s = seconds_ / steps;
  const double devices = comm.plays_all_workers() ? 1.0 : static_cast<double>(comm.size());
  m.push_back({step, wall, "model_tflops", step_s > 0 ? flops / step_s / 1e12 : 0.0});
  m.push_back({step, wall, "peak_tflops", t.peak.flops_per_s / 1e12});
  out.mfu = Mfu(flops, step_s, t.peak.flops_per_s * devices);
  m.push_back({step, wall, "mfu", out.mfu});
  m.push_back({step, wall, "peak_mem_mb", PeakMemoryBytes(t.device) / (1024.0 * 1024.0)});
  m.push_back(
      {step, wall, "expert_flops_per_step", kTrainingFlopsPerForward * expert_flops / steps});
  m.push_back({step, wall, "compute_modeled_ms", 1000.0 * compute_modeled_s});
  m.push_back({step, wall, "comm_modeled_ms", 1000.0 * comm_modeled_s});
  m.push_back(
      {step, wall, "step_modeled_ms",
       1000.0 * ModeledStepSeconds(compute_modeled_s, comm_modeled_s, t.spec.comm_overlap)});
  RoutingRows routing = CollectRoutingRows(run_id, step, wall, t.model, layer_expert_flops_);
  m.insert(m.end(), routing.metrics.begin(), routing.metrics.end());
  out.comm = CommRows(run_id, step, drained);
  out.load = std::move(routing.load);
  *this = MetricWindow(n_workers);
  return out;
}

}  // namespace moebench
