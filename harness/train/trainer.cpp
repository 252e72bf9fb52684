#include "harness/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <thread>

#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>

#include "harness/autocast.h"
#include "harness/comm/c10d_comm.h"
#include "harness/comm/dist_env.h"
#include "harness/comm/launcher.h"
#include "harness/comm/local_comm.h"
#include "harness/comm/network_model.h"
#include "harness/model/compute_model.h"
#include "harness/model/transformer.h"
#include "harness/store/store.h"
#include "harness/torch_compat.h"
#include "harness/train/checkpoint.h"
#include "harness/train/data_pipeline.h"
#include "harness/train/device.h"
#include "harness/train/evaluate.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/lr_schedule.h"
#include "harness/train/run_metrics.h"
#include "harness/util/blas_info.h"
#include "harness/util/time.h"
#include "methods/method.h"

namespace moebench {

namespace {

using Clock = std::chrono::steady_clock;

// Data-parallel gradient buckets (DDP's default size).
constexpr int64_t kGradBucketBytes = 25 << 20;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string HostName() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

void RecordOutputs(Store& store, const std::string& run_id, int64_t step, const std::string& split,
                   const EvalResult& r, int k) {
  std::vector<OutputRow> rows;
  rows.reserve(r.hyps.size());
  for (size_t i = 0; i < r.hyps.size(); ++i) {
    rows.push_back(
        {run_id, step, split, r.langs[i], k, static_cast<int64_t>(i), r.hyps[i], r.refs[i]});
  }
  store.LogOutputs(rows);
}

void RecordEval(Store& store, const std::string& run_id, int64_t step, double wall_s,
                const std::string& split, const EvalResult& r, int k = 0) {
  std::vector<EvalRow> rows;
  for (const auto& [lang, score] : r.per_lang) {
    EvalRow row;
    row.run_id = run_id;
    row.step = step;
    row.wall_s = wall_s;
    row.split = split;
    row.lang = lang.empty() ? "all" : lang;
    row.k = k;
    row.bleu = score.bleu;
    row.chrf = score.chrf;
    row.signature = score.signature;
    row.decoding = r.decoding.dump();
    if (lang.empty()) {
      row.loss = r.nll;
    } else if (auto l = r.lang_loss.find(lang); l != r.lang_loss.end()) {
      row.loss = l->second.nll;
    }
    row.n_sentences = score.n_sentences;
    rows.push_back(row);
  }
  if (!rows.empty()) store.LogEvals(rows);
  if (k > 0) return;  // any-k scores live in evals only
  std::vector<MetricRow> m = {{step, wall_s, split + "_loss", r.loss},
                              {step, wall_s, split + "_nll", r.nll},
                              {step, wall_s, split + "_ppl", std::exp(r.nll)}};
  auto all = r.per_lang.find("");
  if (all != r.per_lang.end()) m.push_back({step, wall_s, split + "_bleu", all->second.bleu});
  // Per language (multilingual runs): "valid_loss.de", "valid_nll.de".
  if (r.lang_loss.size() > 1) {
    for (const auto& [lang, l] : r.lang_loss) {
      m.push_back({step, wall_s, split + "_loss." + lang, l.loss});
      m.push_back({step, wall_s, split + "_nll." + lang, l.nll});
    }
  }
  store.LogMetrics(run_id, m);
}

// One process playing `workers` virtual workers, or one rank of a c10d process group.
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

std::string CheckpointPath(const std::string& run_dir, const Comm& comm) {
  if (comm.plays_all_workers()) return run_dir + "/checkpoint.pt";
  return run_dir + "/checkpoint.rank" + std::to_string(comm.rank()) + "-of-" +
         std::to_string(comm.size()) + ".pt";
}

}  // namespace

void ResolveKnobs(RunSpec& spec) {
  // With ranks, each rank is one worker: workers follows world_size unless set to it.
  if (spec.world_size < 1) throw std::invalid_argument("world_size must be >= 1");
  if (spec.world_size > 1 && spec.workers != spec.world_size) {
    if (spec.workers != 1) {
      throw std::invalid_argument("world_size " + std::to_string(spec.world_size) +
                                  " with workers " + std::to_string(spec.workers) +
                                  ": with ranks, each rank is one worker (leave workers unset)");
    }
    spec.workers = spec.world_size;
  }
  const MethodInfo& info = FindMethod(spec.method);
  spec.knobs = Knobs(spec.method, info.knobs, spec.knobs).values();
}

TrainResult TrainRun(RunSpec spec, const RunEnv& env) {
  ResolveKnobs(spec);
  const std::string run_id = spec.RunId();
  // Ranks of a process group: only rank 0 opens the database (SQLite on a shared file system
  // is unsafe for writers on several hosts) and records the run; the other ranks' errors go to
  // their output, and `moebench launch` / `train --world-size` add which rank failed first.
  const std::optional<DistEnv> dist = spec.world_size > 1 ? DetectDistEnv() : std::nullopt;
  const int my_rank = dist ? dist->rank : 0;
  const bool root = my_rank == 0;
  // Note [Device and precision]: a rank uses GPU LOCAL_RANK of its node.
  const at::Device device = ResolveDevice(spec.device, dist ? dist->local_rank : 0);
  const bool bf16 = UsesBf16(spec.precision);
  MakeCurrentDevice(device);
  std::unique_ptr<Store> store_ptr = root ? std::make_unique<Store>(env.db) : nullptr;
  auto log = [&](const std::string& msg) {
    if (!env.quiet && root) std::cerr << "[" << run_id << "] " << msg << std::endl;
  };

  RunRow row;
  bool finished = false;
  if (root) {
    if (auto existing = store_ptr->FindRun(run_id); existing && existing->id == run_id) {
      row = *existing;
      finished = row.status == RunStatus::kFinished;
    }
  }
  // The process group comes first: the ranks must agree on whether there is anything to do.
  std::unique_ptr<Comm> comm_ptr;
  if (spec.world_size > 1) {
    comm_ptr = MakeComm(spec, env, device.is_cuda());
    at::Tensor flag = at::full({1}, finished ? 1 : 0, at::kLong);
    comm_ptr->Broadcast(flag, 0);
    finished = flag.item<int64_t>() != 0;
  }
  if (finished) {
    log("already finished; nothing to do");
    TrainResult done;
    done.run_id = run_id;
    return done;
  }
  row.id = run_id;
  // A run shared by several sweeps keeps the sweep it was first recorded under.
  if (!spec.sweep.empty() || row.sweep_id.empty()) row.sweep_id = spec.sweep;
  row.method = spec.method;
  row.size = spec.size;
  row.seed = spec.seed;
  row.spec_json = spec.ToJson().dump(2);
  row.host = HostName();
  row.device = DeviceDescription(device);
  row.world_size = spec.world_size;
  // Ranks on one machine share its cores.
  const int local_ranks = dist ? dist->local_world_size : 1;
  const int threads =
      env.threads > 0
          ? env.threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local_ranks);
  row.threads = threads;
  row.libs = nlohmann::json{{"torch", compat::TorchVersion()}, {"sqlite", SqliteVersion()}}.dump();
  row.pid = getpid();
  row.status = RunStatus::kRunning;
  row.error.clear();
  row.exit_code.reset();
  if (root) {
    store_ptr->UpsertRun(row);
    store_ptr->SetRunStatus(run_id, RunStatus::kRunning);
  }

  try {
    at::set_num_threads(threads);
    at::manual_seed(static_cast<uint64_t>(spec.seed));
    const TranslationData data = LoadTranslationData(spec);
    ModelConfig cfg = SizePreset(spec.size);
    cfg.vocab = data.vocab.size();
    cfg.dropout = spec.dropout;
    cfg.label_smoothing = spec.label_smoothing;
    if (spec.num_experts > 0) cfg.num_experts = spec.num_experts;
    if (!comm_ptr) comm_ptr = MakeComm(spec, env, device.is_cuda());
    Comm& comm = *comm_ptr;
    comm.topology().Validate(static_cast<int>(cfg.num_experts));
    comm.meter().set_network(NetworkModel::FromGbps(spec.intra_node_gbps, spec.inter_node_gbps,
                                                    spec.intra_node_latency_us,
                                                    spec.inter_node_latency_us));
    // The compute model's settings are checked before anything trains (Note [Compute model]).
    const DeviceProfile& device_profile = FindDeviceProfile(spec.device_profile);
    ModeledComputeSeconds({0.0}, device_profile, spec.device_efficiency);
    ModeledStepSeconds(0, 0, spec.comm_overlap);
    std::unique_ptr<Method> method = MakeMethod(spec.method, spec.knobs);
    // Every rank builds the whole model from the same seed, then keeps its own experts: the
    // experts of rank r are those of virtual worker r in a one-process run.
    Transformer model(cfg, method.get(), &comm, spec.exchange);
    const ParamCounts params = model->CountParams(method->ActiveExperts());
    if (!comm.plays_all_workers()) ShardExperts(model, comm);
    // Built (and initialised) on the CPU from the seed, then moved: the same initial weights on
    // every device.
    model->to(device);
    row.params_total = params.total;
    row.params_active = params.active;
    // The data a run saw: corpus content hash and provenance (packages and versions for
    // l10n), and the SentencePiece model's hash.
    nlohmann::json libs = nlohmann::json::parse(row.libs);
    libs["corpus"] = {{"name", data.corpus.name},
                      {"content_hash", data.corpus.content_hash},
                      {"provenance", data.corpus.provenance},
                      {"spm_model_hash", data.vocab.model_hash()}};
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    const BlasInfo blas = DetectBlas();
    libs["env"] = {
        {"OMP_WAIT_POLICY", std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : ""},
        {"OPENBLAS_CORETYPE", coretype ? coretype : ""},
        {"blas_core", blas.core},
        {"blas_config", blas.config},
        {"intra_op_threads", threads},
        {"expert_schedule", ExpertSchedule(device)}};
    libs["compute"] = {{"device", DeviceDescription(device)}, {"precision", spec.precision}};
    libs["comm"] = {{"backend", comm.backend()},
                    {"world_size", comm.size()},
                    {"workers", comm.topology().workers},
                    {"workers_per_node", comm.topology().workers_per_node},
                    {"launcher", dist ? dist->source : ""}};
    row.libs = libs.dump();
    if (blas.core == "Prescott" && __builtin_cpu_supports("avx2")) {
      // A CPU whose model OpenBLAS 0.3.21 does not recognise (seen on VMs that report a generic
      // "Intel Xeon Processor") gets the SSE3 kernels: GEMMs ~1.6x slower than SkylakeX ones.
      log("note: OpenBLAS runs its generic Prescott kernels on this AVX2 CPU; matrix products "
          "are ~1.6x slower than they could be (OPENBLAS_CORETYPE=Haswell or SkylakeX selects "
          "faster ones; the run records the kernels as libs.env.blas_core)");
    }
    if (root) store_ptr->UpsertRun(row);
    log("method " + spec.method + ", size " + spec.size + ": " + std::to_string(params.total) +
        " parameters (" + std::to_string(params.active) + " active per token), corpus " +
        std::to_string(data.train.size()) + " train examples, vocab " +
        std::to_string(data.vocab.size()));

    const ParamSplit split = SplitParams(model);
    std::vector<at::Tensor> trainable = split.dense;
    trainable.insert(trainable.end(), split.expert.begin(), split.expert.end());
    torch::optim::Adam optimizer(trainable,
                                 torch::optim::AdamOptions(spec.lr).betas({0.9, 0.98}).eps(1e-9));
    const std::string run_dir =
        env.run_dir.empty()
            ? (std::filesystem::path(env.db).parent_path() / "runs" / run_id).string()
            : env.run_dir;
    const std::string ckpt_path = CheckpointPath(run_dir, comm);
    TrainPosition pos;
    TrainResult result;
    result.run_id = run_id;
    bool loaded = false;
    if (comm.plays_all_workers()) {
      loaded = LoadCheckpoint(ckpt_path, model, optimizer, &pos, device);
    } else {
      // Ranks resume from the newest step every rank has: each keeps its current and its
      // previous checkpoint, so a crash between two ranks' saves costs one interval.
      const int64_t mine[2] = {CheckpointStep(ckpt_path), CheckpointStep(ckpt_path + ".prev")};
      const at::Tensor all =
          comm.AllGather(at::tensor(std::vector<int64_t>{mine[0], mine[1]})).contiguous();
      const int64_t* a = all.data_ptr<int64_t>();
      int64_t common = -1;
      for (int64_t candidate : {mine[0], mine[1]}) {
        bool everyone = candidate >= 0;
        for (int r = 0; r < comm.size() && everyone; ++r) {
          everyone = a[2 * r] == candidate || a[2 * r + 1] == candidate;
        }
        if (everyone) common = std::max(common, candidate);
      }
      if (common >= 0) {
        loaded = LoadCheckpoint(common == mine[0] ? ckpt_path : ckpt_path + ".prev", model,
                                optimizer, &pos, device);
      } else if (mine[0] >= 0 || mine[1] >= 0) {
        log("the ranks' checkpoints share no step; starting over");
      }
    }
    if (loaded) {
      result.resumed = true;
      if (root) store_ptr->DeleteRunDataAfter(run_id, pos.step);
      log("resumed from step " + std::to_string(pos.step));
    } else if (root) {
      store_ptr->DeleteRunDataAfter(run_id, -1);
    }

    DecodeOptions dopt;
    dopt.beam = spec.beam;
    dopt.length_penalty = spec.length_penalty;
    dopt.max_len_a = spec.max_len_a;
    dopt.max_len_b = spec.max_len_b;
    RouteContext base_ctx;
    base_ctx.seed = static_cast<uint64_t>(spec.seed);
    base_ctx.total_steps = spec.max_steps;
    // Evaluation on ranks: all experts gathered to every rank, each rank evaluates its share of
    // the batches (no collectives while decoding), the results are combined; rank 0 records.
    auto evaluate = [&](const std::vector<EncodedExample>& split_examples,
                        const std::vector<ParallelExample>& raw, int64_t max_sentences,
                        const RouteContext& ctx, const DecodeOptions& d) {
      GatheredExperts gathered(model, comm);
      AutocastScope autocast(device.type(), bf16);
      return Evaluate(model, data, split_examples, raw, max_sentences, spec.label_smoothing, ctx, d,
                      &comm);
    };
    if (pos.step == 0) {
      EvalResult first = evaluate(data.valid, data.corpus.valid, 0, base_ctx, DecodeOptions());
      if (root) RecordEval(*store_ptr, run_id, 0, 0.0, "valid", first);
      result.first_valid_loss = first.loss;
      comm.meter().Drain();
    }

    // Batches: each epoch resamples languages (temperature), buckets by length and shuffles
    // the batch order, all seeded by (seed, epoch) so a resumed run sees the same batches.
    std::vector<EncodedExample> pool;
    std::vector<std::vector<int64_t>> epoch_batches;
    int64_t epoch = -1, epoch_start = 0;  // epoch_start: first (0-based) step of the epoch
    auto build_epoch = [&](int64_t e) {
      const uint64_t seed =
          static_cast<uint64_t>(spec.seed) * 1000003ULL + static_cast<uint64_t>(e);
      pool = ResampleByLanguage(data.train, static_cast<int>(data.langs.size()),
                                spec.lang_temperature, seed);
      epoch_batches = BatchSplit(pool, spec.tokens_per_batch, true, seed);
      if (epoch_batches.empty()) throw std::runtime_error("no training batches");
    };
    auto batch_for_step = [&](int64_t step) -> const std::vector<int64_t>& {
      const int64_t s0 = step - 1;
      if (epoch < 0 || s0 < epoch_start) {
        epoch = 0;
        epoch_start = 0;
        build_epoch(0);
      }
      while (s0 >= epoch_start + static_cast<int64_t>(epoch_batches.size())) {
        epoch_start += static_cast<int64_t>(epoch_batches.size());
        build_epoch(++epoch);
      }
      return epoch_batches[s0 - epoch_start];
    };

    model->train();
    double window_loss = 0, window_nll = 0, window_aux = 0, window_seconds = 0;
    int64_t window_tokens = 0, window_steps = 0;
    std::map<std::string, double> window_extra;
    // Forward FLOPs of the window's training steps (Note [Compute model]): non-expert, and the
    // experts' by worker.
    const int n_workers = comm.topology().workers;
    double window_nonexpert_flops = 0;
    std::vector<double> window_expert_flops(n_workers, 0.0);
    double grad_norm = 0, lr = 0;
    double bookkeeping_seconds = 0, checkpoint_seconds = 0;
    for (int64_t step = pos.step + 1; step <= spec.max_steps; ++step) {
      const auto t0 = Clock::now();
      const std::vector<int64_t>& rows = batch_for_step(step);
      Batch batch = MakeBatch(pool, rows, data.vocab);
      if (!comm.plays_all_workers()) batch = RankSlice(batch, comm.rank(), comm.size());
      batch = ToDevice(batch, device);
      RouteContext ctx = base_ctx;
      ctx.training = true;
      ctx.step = step;
      ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(batch.src_lengths);
      ctx.tgt_lengths = std::make_shared<const std::vector<int64_t>>(batch.tgt_lengths);
      ForwardFn forward = [&](int pass) {
        RouteContext c = ctx;
        c.pass = pass;
        ForwardOutput out;
        AutocastScope autocast(device.type(), bf16);  // the loss takes the logits in fp32
        out.logits = model->forward(batch.src, batch.tgt_in, c);
        auto [ce, nll] = LabelSmoothedCrossEntropy(out.logits, batch.tgt_out, spec.label_smoothing,
                                                   model->pad_id());
        out.ce_sum = ce;
        out.nll_sum = nll;
        out.aux = model->AuxLoss();
        out.target_mask = batch.tgt_out.ne(model->pad_id());
        out.ntokens = batch.ntokens;
        return out;
      };
      const double nonexpert_before = model->nonexpert_forward_flops();
      const std::vector<double> expert_before = model->expert_forward_flops_by_worker();
      ObjectiveOutput obj = method->Objective(forward);
      window_nonexpert_flops += model->nonexpert_forward_flops() - nonexpert_before;
      {
        const std::vector<double> expert_after = model->expert_forward_flops_by_worker();
        for (size_t i = 0; i < expert_after.size() && i < window_expert_flops.size(); ++i) {
          window_expert_flops[i] +=
              expert_after[i] - (i < expert_before.size() ? expert_before[i] : 0);
        }
      }
      optimizer.zero_grad();
      obj.loss.backward();
      AllReduceDenseGrads(comm, split.dense, kGradBucketBytes);
      grad_norm = ClipGlobalGradNorm(comm, split, spec.clip_norm);
      lr = InverseSqrtLr(spec.lr, step, spec.warmup);
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
      optimizer.step();
      // The step's values reach the host in one copy, after the update was queued: on a GPU the
      // only other waits in a step are the MoE layers' split sizes and the gradient norm, and
      // this one makes the step's wall-clock include its device work.
      const at::Tensor values = at::stack({obj.loss.detach(), obj.first.ce_sum.detach(),
                                           obj.first.nll_sum.detach(), obj.first.aux.detach()})
                                    .to(at::kDouble)
                                    .to(at::kCPU);
      const double* value = values.data_ptr<double>();
      if (!std::isfinite(value[0])) {
        throw std::runtime_error("loss is " + std::to_string(value[0]) + " at step " +
                                 std::to_string(step));
      }
      const double dt = Seconds(t0, Clock::now());
      pos.step = step;
      pos.train_seconds += dt;
      window_seconds += dt;
      window_steps += 1;
      window_tokens += batch.ntokens;
      window_loss += value[1];
      window_nll += value[2];
      window_aux += value[3];
      for (const auto& [k, v] : obj.metrics) window_extra[k] += v;

      const bool last = step == spec.max_steps;
      const auto b0 = Clock::now();
      if (step % spec.log_every == 0 || last) {
        const double wall = pos.train_seconds;
        if (!comm.plays_all_workers()) {
          // Each rank saw its own sentences: sum the window over ranks.
          std::vector<double> v = {window_loss, window_nll, window_aux};
          for (const auto& [k, x] : window_extra) v.push_back(x);
          v = SumOverRanks(comm, v);
          window_loss = v[0];
          window_nll = v[1];
          window_aux = v[2];
          size_t i = 3;
          for (auto& [k, x] : window_extra) x = v[i++];
          window_seconds = SumOverRanks(comm, {window_seconds})[0] / comm.size();
          // Each rank counted its own batch slice and the rows its own experts computed.
          std::vector<double> f = window_expert_flops;
          f.push_back(window_nonexpert_flops);
          f = SumOverRanks(comm, f);
          window_nonexpert_flops = f.back();
          f.pop_back();
          window_expert_flops = f;
        }
        const double ntok = static_cast<double>(std::max<int64_t>(window_tokens, 1));
        std::vector<MetricRow> m = {
            {step, wall, "train_loss", window_loss / ntok},
            {step, wall, "train_nll", window_nll / ntok},
            {step, wall, "train_ppl", std::exp(window_nll / ntok)},
            {step, wall, "aux_loss", window_aux / window_steps},
            {step, wall, "lr", lr},
            {step, wall, "grad_norm", grad_norm},
            {step, wall, "tokens_per_s", window_tokens / std::max(window_seconds, 1e-9)},
            {step, wall, "step_ms", 1000.0 * window_seconds / window_steps},
        };
        for (const auto& [k, v] : window_extra) m.push_back({step, wall, k, v / window_steps});
        auto drained = comm.meter().Drain();
        ReduceCounters(comm, drained);
        ReduceLayerStats(comm, model);
        for (auto& r : CommMetrics(step, wall, window_steps, drained)) m.push_back(r);
        {
          // Measured here, per step: compute = step - measured communication. Modeled on the
          // cluster, per step: the FLOPs on the device profile plus the modeled communication
          // (Note [Compute model], Note [Network model]).
          double comm_ms = 0, modeled_ms = 0;
          for (const auto& [key, c] : drained) {
            comm_ms += c.ms;
            modeled_ms += c.modeled_ms;
          }
          const double steps = static_cast<double>(window_steps);
          const double compute_ms = 1000.0 * window_seconds / steps - comm_ms / steps;
          m.push_back({step, wall, "compute_ms", compute_ms});
          double expert_flops = 0;
          std::vector<double> per_worker(n_workers, 0.0);
          for (int i = 0; i < n_workers; ++i) {
            expert_flops += window_expert_flops[i];
            per_worker[i] = kTrainingFlopsPerForward *
                            (window_nonexpert_flops / n_workers + window_expert_flops[i]) / steps;
          }
          const double flops =
              kTrainingFlopsPerForward * (window_nonexpert_flops + expert_flops) / steps;
          const double compute_modeled_s =
              ModeledComputeSeconds(per_worker, device_profile, spec.device_efficiency);
          const double comm_modeled_s = modeled_ms / steps / 1000.0;
          m.push_back({step, wall, "flops_per_step", flops});
          m.push_back({step, wall, "expert_flops_per_step",
                       kTrainingFlopsPerForward * expert_flops / steps});
          m.push_back({step, wall, "compute_modeled_ms", 1000.0 * compute_modeled_s});
          m.push_back({step, wall, "comm_modeled_ms", 1000.0 * comm_modeled_s});
          m.push_back(
              {step, wall, "step_modeled_ms",
               1000.0 * ModeledStepSeconds(compute_modeled_s, comm_modeled_s, spec.comm_overlap)});
        }
        RoutingRows routing = CollectRoutingRows(run_id, step, wall, model);
        m.insert(m.end(), routing.metrics.begin(), routing.metrics.end());
        if (root) {
          store_ptr->LogMetrics(run_id, m);
          store_ptr->LogComm(CommRows(run_id, step, drained));
          store_ptr->LogExpertLoad(routing.load);
          store_ptr->Heartbeat(run_id, getpid());
        }
        log("step " + std::to_string(step) + " loss " + std::to_string(window_loss / ntok) +
            " tok/s " + std::to_string(static_cast<int64_t>(window_tokens / window_seconds)));
        result.tokens_per_second = window_tokens / std::max(window_seconds, 1e-9);
        window_loss = window_nll = window_aux = window_seconds = 0;
        window_tokens = window_steps = 0;
        window_extra.clear();
        window_nonexpert_flops = 0;
        std::fill(window_expert_flops.begin(), window_expert_flops.end(), 0.0);
      }
      bookkeeping_seconds += Seconds(b0, Clock::now());
      if (step % spec.eval_every == 0 || last) {
        const auto pending = comm.meter().Drain();  // evaluation traffic is not training's
        const auto e0 = Clock::now();
        EvalResult v =
            evaluate(data.valid, data.corpus.valid, spec.valid_sentences, base_ctx, dopt);
        if (root) {
          RecordEval(*store_ptr, run_id, step, pos.train_seconds, "valid", v);
          store_ptr->LogMetrics(
              run_id, {{step, pos.train_seconds, "eval_seconds", Seconds(e0, Clock::now())}});
        }
        comm.meter().Drain();
        comm.meter().Restore(pending);
        result.final_valid_loss = v.loss;
        auto all = v.per_lang.find("");
        if (all != v.per_lang.end()) result.final_valid_bleu = all->second.bleu;
        log("valid loss " + std::to_string(v.loss) +
            (all != v.per_lang.end() ? " bleu " + std::to_string(all->second.bleu) : ""));
      }
      if (step % spec.checkpoint_every == 0 || last) {
        const auto c0 = Clock::now();
        SaveCheckpoint(ckpt_path, model, optimizer, pos, !comm.plays_all_workers());
        checkpoint_seconds += Seconds(c0, Clock::now());
      }
    }
    result.steps = pos.step;
    result.train_seconds = pos.train_seconds;
    if (spec.valid_sentences > 0) {
      EvalResult t = evaluate(data.test, data.corpus.test, spec.valid_sentences, base_ctx, dopt);
      if (root) {
        RecordEval(*store_ptr, run_id, pos.step, pos.train_seconds, "test", t);
        RecordOutputs(*store_ptr, run_id, pos.step, "test", t, 0);
      }
      // Any-k evaluation (self-slimmable curves): the same test sentences at each k. A model
      // without MoE layers (the dense baseline) has no k to vary and records no any-k rows.
      const bool has_experts = !model->MoeLayers().empty();
      if (!has_experts && !spec.eval_k.empty()) log("no MoE layer: eval_k skipped");
      for (int64_t k : has_experts ? spec.eval_k : std::vector<int64_t>{}) {
        RouteContext kctx = base_ctx;
        kctx.eval_k = k;
        EvalResult tk = evaluate(data.test, data.corpus.test, spec.valid_sentences, kctx, dopt);
        if (!root) continue;
        RecordEval(*store_ptr, run_id, pos.step, pos.train_seconds, "test", tk,
                   static_cast<int>(k));
        RecordOutputs(*store_ptr, run_id, pos.step, "test", tk, static_cast<int>(k));
        store_ptr->LogMetrics(run_id,
                              {{pos.step, pos.train_seconds, "test_bleu_k" + std::to_string(k),
                                tk.per_lang.count("") ? tk.per_lang.at("").bleu : 0.0}});
      }
    }
    if (!comm.plays_all_workers()) comm.Barrier();  // no rank leaves while others still need it
    if (root) {
      // Outside the timed steps: metric collection and database writes at log steps, and
      // checkpoints (this process's share of them, since it started or resumed).
      store_ptr->LogMetrics(
          run_id, {{pos.step, pos.train_seconds, "train_seconds", pos.train_seconds},
                   {pos.step, pos.train_seconds, "bookkeeping_seconds", bookkeeping_seconds},
                   {pos.step, pos.train_seconds, "checkpoint_seconds", checkpoint_seconds}});
      store_ptr->SetRunStatus(run_id, RunStatus::kFinished, "", 0);
    }
    log("finished in " + std::to_string(pos.train_seconds) + " s of training");
    return result;
  } catch (const std::exception& e) {
    const std::string what = spec.world_size > 1
                                 ? "rank " + std::to_string(my_rank) + " of " +
                                       std::to_string(spec.world_size) + ": " + e.what()
                                 : std::string(e.what());
    if (root) store_ptr->SetRunStatus(run_id, RunStatus::kFailed, what, 1);
    // Keep a failed collective recognisable (Note [Which rank failed]).
    if (dynamic_cast<const CollectiveError*>(&e) != nullptr) throw CollectiveError(what);
    throw std::runtime_error(what);
  }
}

}  // namespace moebench
