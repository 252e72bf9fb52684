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

#include "harness/comm/local_comm.h"
#include "harness/model/transformer.h"
#include "harness/store/store.h"
#include "harness/torch_compat.h"
#include "harness/train/checkpoint.h"
#include "harness/train/data_pipeline.h"
#include "harness/train/evaluate.h"
#include "harness/train/lr_schedule.h"
#include "harness/train/run_metrics.h"
#include "harness/util/time.h"
#include "methods/method.h"

namespace moebench {

namespace {

using Clock = std::chrono::steady_clock;

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
    if (lang.empty()) row.loss = r.nll;
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
  store.LogMetrics(run_id, m);
}

}  // namespace

void ResolveKnobs(RunSpec& spec) {
  const MethodInfo& info = FindMethod(spec.method);
  spec.knobs = Knobs(spec.method, info.knobs, spec.knobs).values();
}

TrainResult TrainRun(RunSpec spec, const RunEnv& env) {
  ResolveKnobs(spec);
  const std::string run_id = spec.RunId();
  Store store(env.db);
  auto log = [&](const std::string& msg) {
    if (!env.quiet) std::cerr << "[" << run_id << "] " << msg << std::endl;
  };

  RunRow row;
  if (auto existing = store.FindRun(run_id); existing && existing->id == run_id) {
    row = *existing;
    if (row.status == RunStatus::kFinished) {
      log("already finished; nothing to do");
      TrainResult done;
      done.run_id = run_id;
      return done;
    }
  }
  row.id = run_id;
  // A run shared by several sweeps keeps the sweep it was first recorded under.
  if (!spec.sweep.empty() || row.sweep_id.empty()) row.sweep_id = spec.sweep;
  row.method = spec.method;
  row.size = spec.size;
  row.seed = spec.seed;
  row.spec_json = spec.ToJson().dump(2);
  row.host = HostName();
  row.device = "cpu";
  row.world_size = 1;
  const int threads =
      env.threads > 0 ? env.threads : static_cast<int>(std::thread::hardware_concurrency());
  row.threads = threads;
  row.libs = nlohmann::json{{"torch", compat::TorchVersion()}, {"sqlite", SqliteVersion()}}.dump();
  row.pid = getpid();
  row.status = RunStatus::kRunning;
  row.error.clear();
  row.exit_code.reset();
  store.UpsertRun(row);
  store.SetRunStatus(run_id, RunStatus::kRunning);

  try {
    at::set_num_threads(threads);
    at::manual_seed(static_cast<uint64_t>(spec.seed));
    const TranslationData data = LoadTranslationData(spec);
    ModelConfig cfg = SizePreset(spec.size);
    cfg.vocab = data.vocab.size();
    cfg.dropout = spec.dropout;
    cfg.label_smoothing = spec.label_smoothing;
    if (spec.num_experts > 0) cfg.num_experts = spec.num_experts;
    LocalComm comm(Topology{spec.workers, spec.workers_per_node});
    comm.topology().Validate(static_cast<int>(cfg.num_experts));
    std::unique_ptr<Method> method = MakeMethod(spec.method, spec.knobs);
    Transformer model(cfg, method.get(), &comm, spec.exchange);
    const ParamCounts params = model->CountParams(method->ActiveExperts());
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
    libs["env"] = {
        {"OMP_WAIT_POLICY", std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : ""},
        {"OPENBLAS_CORETYPE", coretype ? coretype : ""},
        {"intra_op_threads", threads}};
    row.libs = libs.dump();
    store.UpsertRun(row);
    log("method " + spec.method + ", size " + spec.size + ": " + std::to_string(params.total) +
        " parameters (" + std::to_string(params.active) + " active per token), corpus " +
        std::to_string(data.train.size()) + " train examples, vocab " +
        std::to_string(data.vocab.size()));

    std::vector<at::Tensor> trainable;
    for (const auto& p : model->parameters()) {
      if (p.requires_grad()) trainable.push_back(p);
    }
    torch::optim::Adam optimizer(trainable,
                                 torch::optim::AdamOptions(spec.lr).betas({0.9, 0.98}).eps(1e-9));
    const std::string run_dir =
        env.run_dir.empty()
            ? (std::filesystem::path(env.db).parent_path() / "runs" / run_id).string()
            : env.run_dir;
    const std::string ckpt_path = run_dir + "/checkpoint.pt";
    TrainPosition pos;
    TrainResult result;
    result.run_id = run_id;
    if (LoadCheckpoint(ckpt_path, model, optimizer, &pos)) {
      result.resumed = true;
      store.DeleteRunDataAfter(run_id, pos.step);
      log("resumed from step " + std::to_string(pos.step));
    } else {
      store.DeleteRunDataAfter(run_id, -1);
    }

    DecodeOptions dopt;
    dopt.beam = spec.beam;
    dopt.length_penalty = spec.length_penalty;
    RouteContext base_ctx;
    base_ctx.seed = static_cast<uint64_t>(spec.seed);
    base_ctx.total_steps = spec.max_steps;
    if (pos.step == 0) {
      EvalResult first =
          Evaluate(model, data, data.valid, data.corpus.valid, 0, spec.label_smoothing, base_ctx);
      RecordEval(store, run_id, 0, 0.0, "valid", first);
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
    double grad_norm = 0, lr = 0;
    for (int64_t step = pos.step + 1; step <= spec.max_steps; ++step) {
      const auto t0 = Clock::now();
      const std::vector<int64_t>& rows = batch_for_step(step);
      Batch batch = MakeBatch(pool, rows, data.vocab);
      RouteContext ctx = base_ctx;
      ctx.training = true;
      ctx.step = step;
      ForwardFn forward = [&](int pass) {
        RouteContext c = ctx;
        c.pass = pass;
        ForwardOutput out;
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
      ObjectiveOutput obj = method->Objective(forward);
      const double loss_value = obj.loss.item<double>();
      if (!std::isfinite(loss_value)) {
        throw std::runtime_error("loss is " + std::to_string(loss_value) + " at step " +
                                 std::to_string(step));
      }
      optimizer.zero_grad();
      obj.loss.backward();
      grad_norm = torch::nn::utils::clip_grad_norm_(trainable, spec.clip_norm);
      lr = InverseSqrtLr(spec.lr, step, spec.warmup);
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
      optimizer.step();
      const double dt = Seconds(t0, Clock::now());
      pos.step = step;
      pos.train_seconds += dt;
      window_seconds += dt;
      window_steps += 1;
      window_tokens += batch.ntokens;
      window_loss += obj.first.ce_sum.item<double>();
      window_nll += obj.first.nll_sum.item<double>();
      window_aux += obj.first.aux.item<double>();
      for (const auto& [k, v] : obj.metrics) window_extra[k] += v;

      const bool last = step == spec.max_steps;
      if (step % spec.log_every == 0 || last) {
        const double wall = pos.train_seconds;
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
        const auto drained = comm.meter().Drain();
        for (auto& r : CommMetrics(step, wall, window_steps, drained)) m.push_back(r);
        RoutingRows routing = CollectRoutingRows(run_id, step, wall, model);
        m.insert(m.end(), routing.metrics.begin(), routing.metrics.end());
        store.LogMetrics(run_id, m);
        store.LogComm(CommRows(run_id, step, drained));
        store.LogExpertLoad(routing.load);
        store.Heartbeat(run_id, getpid());
        log("step " + std::to_string(step) + " loss " + std::to_string(window_loss / ntok) +
            " tok/s " + std::to_string(static_cast<int64_t>(window_tokens / window_seconds)));
        result.tokens_per_second = window_tokens / std::max(window_seconds, 1e-9);
        window_loss = window_nll = window_aux = window_seconds = 0;
        window_tokens = window_steps = 0;
        window_extra.clear();
      }
      if (step % spec.eval_every == 0 || last) {
        const auto pending = comm.meter().Drain();  // evaluation traffic is not training's
        const auto e0 = Clock::now();
        EvalResult v = Evaluate(model, data, data.valid, data.corpus.valid, spec.valid_sentences,
                                spec.label_smoothing, base_ctx, dopt);
        RecordEval(store, run_id, step, pos.train_seconds, "valid", v);
        store.LogMetrics(run_id,
                         {{step, pos.train_seconds, "eval_seconds", Seconds(e0, Clock::now())}});
        comm.meter().Drain();
        comm.meter().Restore(pending);
        result.final_valid_loss = v.loss;
        auto all = v.per_lang.find("");
        if (all != v.per_lang.end()) result.final_valid_bleu = all->second.bleu;
        log("valid loss " + std::to_string(v.loss) +
            (all != v.per_lang.end() ? " bleu " + std::to_string(all->second.bleu) : ""));
      }
      if (step % spec.checkpoint_every == 0 || last) {
        SaveCheckpoint(ckpt_path, model, optimizer, pos);
      }
    }
    result.steps = pos.step;
    result.train_seconds = pos.train_seconds;
    if (spec.valid_sentences > 0) {
      EvalResult t = Evaluate(model, data, data.test, data.corpus.test, spec.valid_sentences,
                              spec.label_smoothing, base_ctx, dopt);
      RecordEval(store, run_id, pos.step, pos.train_seconds, "test", t);
      RecordOutputs(store, run_id, pos.step, "test", t, 0);
      // Any-k evaluation (self-slimmable curves): the same test sentences at each k.
      for (int64_t k : spec.eval_k) {
        RouteContext kctx = base_ctx;
        kctx.eval_k = k;
        EvalResult tk = Evaluate(model, data, data.test, data.corpus.test, spec.valid_sentences,
                                 spec.label_smoothing, kctx, dopt);
        RecordEval(store, run_id, pos.step, pos.train_seconds, "test", tk, static_cast<int>(k));
        RecordOutputs(store, run_id, pos.step, "test", tk, static_cast<int>(k));
        store.LogMetrics(run_id, {{pos.step, pos.train_seconds, "test_bleu_k" + std::to_string(k),
                                   tk.per_lang.count("") ? tk.per_lang.at("").bleu : 0.0}});
      }
    }
    store.LogMetrics(run_id, {{pos.step, pos.train_seconds, "train_seconds", pos.train_seconds}});
    store.SetRunStatus(run_id, RunStatus::kFinished, "", 0);
    log("finished in " + std::to_string(pos.train_seconds) + " s of training");
    return result;
  } catch (const std::exception& e) {
    store.SetRunStatus(run_id, RunStatus::kFailed, e.what(), 1);
    throw;
  }
}

}  // namespace moebench
