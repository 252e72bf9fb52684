#include "harness/train/training.h"

#include <cmath>
#include <memory>
#include <stdexcept>

#include "harness/autocast.h"
#include "harness/comm/c10d_comm.h"
#include "harness/comm/local_comm.h"
#include "harness/comm/network_model.h"
#include "harness/error_text.h"
#include "harness/model/expert_layout.h"
#include "harness/train/device.h"
#include "harness/train/lr_schedule.h"
#include "harness/util/time.h"
#include "methods/step_hook.h"

namespace moebench {

// Note [Router step hooks] (methods/step_hook.h): after the optimizer step, every router's
// step statistics, summed over ranks in one all-reduce for all MoE layers, reach the routers.
// One process playing W workers has summed its groups already and runs no all-reduce; like the
// gradient all-reduce it records the one W ranks run (same bytes either way).
void UpdateRouters(Training& t, int64_t step) {
  std::vector<MoeLayer> layers = t.model->MoeLayers();
  std::vector<StepHook*> routers;
  std::vector<at::Tensor> counts;
  for (MoeLayer& layer : layers) {
    auto* hook = dynamic_cast<StepHook*>(&layer->router());
    if (!hook) continue;
    routers.push_back(hook);
    counts.push_back(hook->StepCounts().to(at::kDouble).reshape({-1}));
  }
  if (routers.empty()) return;
  at::Tensor all = at::cat(counts);
  Comm& comm = *t.comm;
  const int64_t bytes = all.numel() * static_cast<int64_t>(all.element_size());
  const bool real = !comm.plays_all_workers();
  const double t0 = SteadyNowMs();
  if (real) comm.AllReduceSum(all);
  comm.meter().RecordAllReduce(comm.topology(), bytes, 1, real ? SteadyNowMs() - t0 : 0.0,
                               real ? comm.rank() : -1);
  int64_t offset = 0;
  for (size_t i = 0; i < routers.size(); ++i) {
    const int64_t n = counts[i].numel();
    routers[i]->AfterStep(all.narrow(0, offset, n), step, t.spec.max_steps);
    offset += n;
  }
}

std::unique_ptr<Comm> MakeComm(const RunSpec& spec, const RunEnv& env, bool cuda) {
  const Topology topo{spec.workers, spec.workers_per_node};
  if (spec.world_size <= 1) return std::make_unique<LocalComm>(topo);
  if (spec.workers != spec.world_size) {
    throw std::invalid_argument("world_size " + std::to_string(spec.world_size) +
                                " needs workers = world_size (got " + std::to_string(spec.workers) +
                                ")");
  }
  const std::optional<DistEnv> dist = DetectDistEnv();
  if (!dist) {
    throw std::invalid_argument(
        "world_size " + std::to_string(spec.world_size) +
        " but no rank environment (RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS in an srun step, "
        "or OMPI_COMM_WORLD_*): start it with `moebench train --world-size N`, "
        "`moebench launch`, torchrun --no-python, srun or mpirun");
  }
  if (dist->world_size != spec.world_size) {
    throw std::invalid_argument("world_size " + std::to_string(spec.world_size) + " but " +
                                dist->source + " started " + std::to_string(dist->world_size) +
                                " ranks");
  }
  C10dOptions opt;
  opt.env = *dist;
  opt.topology = topo;
  opt.timeout_s = env.comm_timeout_s;
  opt.cuda = cuda;  // NCCL between GPUs, Gloo otherwise
  return std::make_unique<C10dComm>(opt);
}

std::unique_ptr<Training> BuildTraining(const RunSpec& spec, const at::Device& device, int threads,
                                        std::unique_ptr<Comm> comm, const RunEnv& env,
                                        const std::optional<DistEnv>& dist) {
  at::set_num_threads(threads);
  at::manual_seed(static_cast<uint64_t>(spec.seed));
  auto t = std::make_unique<Training>(LoadTranslationData(spec));
  t->spec = spec;
  t->device = device;
  t->bf16 = UsesBf16(spec.precision);
  t->threads = threads;
  t->peak = FindDevicePeak(device, t->bf16);
  t->dist = dist;
  ModelConfig cfg = SizePreset(spec.size);
  cfg.vocab = t->data.vocab.size();
  cfg.dropout = spec.dropout;
  cfg.label_smoothing = spec.label_smoothing;
  if (spec.num_experts > 0) cfg.num_experts = spec.num_experts;
  cfg.shared_experts = spec.shared_experts;
  cfg.expert_granularity = spec.expert_granularity;
  t->comm = comm ? std::move(comm) : MakeComm(spec, env, device.is_cuda());
  Comm& c = *t->comm;
  c.topology().Validate(static_cast<int>(cfg.num_experts * cfg.expert_granularity));
  c.meter().set_network(NetworkModel::FromGbps(spec.intra_node_gbps, spec.inter_node_gbps,
                                               spec.intra_node_latency_us,
                                               spec.inter_node_latency_us, spec.node_nic_gbps));
  // The compute model's settings are checked before anything trains (Note [Compute model]).
  t->device_profile = &FindDeviceProfile(spec.device_profile);
  ModeledComputeSeconds({0.0}, *t->device_profile, spec.device_efficiency);
  ModeledStepSeconds(0, 0, spec.comm_overlap);
  t->method = MakeMethod(spec.method, spec.knobs);
  // Every rank builds the whole model from the same seed, then keeps its own experts: the
  // experts of rank r are those of virtual worker r in a one-process run.
  try {
    t->model = Transformer(cfg, t->method.get(), &c, spec.exchange, spec.moe_path == "static");
  } catch (const std::exception& e) {  // out of memory, most likely
    throw std::runtime_error("cannot build the model (size " + spec.size + ", " +
                             std::to_string(cfg.num_experts) +
                             " experts per MoE layer): " + ErrorText(e));
  }
  t->params = t->model->CountParams(MoeExpertLayout(cfg, *t->method).top_k);
  if (!c.plays_all_workers()) ShardExperts(t->model, c);
  // Built (and initialised) on the CPU from the seed, then moved: the same initial weights on
  // every device.
  t->model->to(device);
  t->split = SplitParams(t->model);
  std::vector<at::Tensor> trainable = t->split.dense;
  trainable.insert(trainable.end(), t->split.expert.begin(), t->split.expert.end());
  t->optimizer = std::make_unique<torch::optim::Adam>(
      trainable, torch::optim::AdamOptions(spec.lr).betas({0.9, 0.98}).eps(1e-9));
  t->update = std::make_unique<ReplayableAdam>(*t->optimizer, spec.lr, spec.warmup);
  return t;
}

bool WindowClosesAt(const RunSpec& spec, int64_t step) {
  return step % spec.log_every == 0 || step % spec.checkpoint_every == 0 || step == spec.max_steps;
}

void StepOps(Training& t, const std::vector<Batch>& micro, int64_t step, const StepOptions& opt,
             StepTensors& out, StepValues& v) {
  Transformer& model = t.model;
  const double aux_weight = 1.0 / static_cast<double>(micro.size());
  const double nonexpert_before = model->nonexpert_forward_flops();
  const std::vector<double> expert_before = model->expert_forward_flops_by_worker();
  const std::vector<MoeLayer> layers = model->MoeLayers();
  v.layer_expert_flops.clear();
  for (const MoeLayer& layer : layers) v.layer_expert_flops.push_back(-layer->expert_flops());
  if (opt.graph) {
    // Zeroed in place (as LibTorch 1.x's zero_grad does; 2.x's drops them): a parameter keeps
    // one gradient tensor, which a captured step writes into (StepGraphs makes them all).
    for (const std::vector<at::Tensor>* ps : {&t.split.dense, &t.split.expert}) {
      for (const at::Tensor& p : *ps) {
        if (p.grad().defined()) p.mutable_grad().detach_().zero_();
      }
    }
  } else {
    t.optimizer->zero_grad();
  }
  for (at::Tensor* sum : {&out.loss, &out.ce, &out.nll, &out.aux}) sum->zero_();
  for (auto& [key, sum] : out.metrics) sum.zero_();
  // One cast of each weight to bf16 for the step's passes (Note [Weight casts once per step]),
  // dropped before the optimizer changes the weights.
  auto cast_once = std::make_unique<CastCacheScope>(t.bf16);
  for (size_t i = 0; i < micro.size(); ++i) {
    const Batch& mb = micro[i];
    RouteContext ctx;
    ctx.seed = static_cast<uint64_t>(t.spec.seed);
    ctx.total_steps = t.spec.max_steps;
    ctx.training = true;
    ctx.step = step;
    ctx.statistics = opt.statistics;
    ctx.bounded_capacity = opt.graph;
    ctx.graph_random = opt.graph;
    ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(mb.src_lengths);
    ctx.tgt_lengths = std::make_shared<const std::vector<int64_t>>(mb.tgt_lengths);
    if (opt.rank_shares != nullptr && i < opt.rank_shares->size()) {
      ctx.rank_shares = std::make_shared<const std::vector<RankShare>>((*opt.rank_shares)[i]);
    }
    ForwardFn forward = [&](int pass) {
      RouteContext c = ctx;
      c.pass = pass;
      ForwardOutput fo;
      AutocastScope autocast(t.device.type(), t.bf16);  // the loss takes the logits in fp32
      fo.logits = model->forward(mb.src, mb.tgt_in, c);
      auto [ce_sum, nll_sum] =
          LabelSmoothedCrossEntropy(fo.logits, mb.tgt_out, t.spec.label_smoothing, model->pad_id());
      fo.ce_sum = ce_sum;
      fo.nll_sum = nll_sum;
      fo.aux = micro.size() > 1 ? model->AuxLoss() * aux_weight : model->AuxLoss();
      fo.target_mask = mb.tgt_out.ne(model->pad_id());
      fo.ntokens = mb.ntokens;
      fo.normaliser = mb.ntokens_tensor;
      return fo;
    };
    ObjectiveOutput obj = t.method->Objective(forward);
    obj.loss.backward();
    out.loss.add_(obj.loss.detach());
    out.ce.add_(obj.first.ce_sum.detach());
    out.nll.add_(obj.first.nll_sum.detach());
    out.aux.add_(obj.first.aux.detach());
    for (const auto& [key, value] : obj.metrics) {
      at::Tensor& sum = out.metrics[key];
      if (!sum.defined()) sum = at::zeros({}, out.loss.options());
      sum.add_(value.detach().to(sum.dtype()), aux_weight);
    }
  }
  cast_once.reset();
  for (size_t i = 0; i < layers.size(); ++i) v.layer_expert_flops[i] += layers[i]->expert_flops();
  v.nonexpert_flops = model->nonexpert_forward_flops() - nonexpert_before;
  v.expert_flops = model->expert_forward_flops_by_worker();
  for (size_t i = 0; i < v.expert_flops.size() && i < expert_before.size(); ++i) {
    v.expert_flops[i] -= expert_before[i];
  }
  AllReduceDenseGrads(*t.comm, t.split.dense, kGradBucketBytes);
  out.grad_norm.copy_(ClipGlobalGradNorm(*t.comm, t.split, t.spec.clip_norm));
  v.lr = InverseSqrtLr(t.spec.lr, step, t.spec.warmup);  // the host's copy of the device's
  t.update->Step(step);
}

StepTensors StepTensors::Zeros(const at::Device& device) {
  const at::TensorOptions opt = at::TensorOptions().dtype(at::kDouble).device(device);
  StepTensors out;
  for (at::Tensor* t : {&out.loss, &out.ce, &out.nll, &out.aux, &out.grad_norm}) {
    *t = at::zeros({}, opt);
  }
  return out;
}

void ReadStepValues(const StepTensors& out, int64_t step, StepValues& v) {
  // The step's values reach the host in one copy, after the update was queued: on a GPU the
  // only other waits in a step are the MoE layers' split sizes (on the dynamic path), and this
  // one makes the step's wall-clock include its device work.
  std::vector<at::Tensor> parts = {out.loss, out.ce, out.nll, out.aux, out.grad_norm};
  for (const auto& [key, sum] : out.metrics) parts.push_back(sum);
  const at::Tensor values = at::stack(parts).to(at::kCPU);
  const double* value = values.data_ptr<double>();
  if (!std::isfinite(value[0])) {
    throw std::runtime_error("loss is " + std::to_string(value[0]) + " at step " +
                             std::to_string(step));
  }
  v.loss = value[0];
  v.ce = value[1];
  v.nll = value[2];
  v.aux = value[3];
  v.grad_norm = value[4];
  size_t i = 5;
  for (const auto& [key, sum] : out.metrics) v.metrics[key] = value[i++];
}

StepValues TrainStep(Training& t, const Batch& batch, int64_t step,
                     const std::vector<std::vector<RankShare>>& rank_shares) {
  // Note [Gradient accumulation]: grad_accum micro-batches, their gradients summed.
  const int blocks = t.comm->plays_all_workers() ? t.comm->topology().workers : 1;
  const std::vector<Batch> micro = MicroBatches(batch, t.spec.grad_accum, blocks);
  StepValues v;
  StepOptions opt;
  opt.statistics = WindowClosesAt(t.spec, step);  // read only when the window closes
  opt.rank_shares = &rank_shares;
  StepTensors out = StepTensors::Zeros(t.device);
  StepOps(t, micro, step, opt, out, v);
  UpdateRouters(t, step);
  ReadStepValues(out, step, v);
  v.tokens = batch.ntokens;
  return v;
}

}  // namespace moebench
