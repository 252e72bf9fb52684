#include "harness/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>

#include <c10/util/Exception.h>

#include "harness/comm/launcher.h"
#include "harness/error_text.h"
#include "harness/spec/resolve.h"
#include "harness/store/liveness.h"
#include "harness/train/checkpoint.h"
#include "harness/train/device.h"
#include "harness/train/evaluation.h"
#include "harness/train/metric_window.h"
#include "harness/train/provenance.h"
#include "harness/train/rank_watch.h"
#include "harness/train/run_record.h"
#include "harness/train/step_graphs.h"
#include "harness/train/training.h"
#include "harness/util/hash.h"

namespace moebench {

namespace {

using Clock = std::chrono::steady_clock;

std::string FormatTflops(double flops_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", flops_per_s / 1e12);
  return buf;
}

std::string FormatPercent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", 100.0 * fraction);
  return buf;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Progress lines on stderr, from the writer only.
struct RunLog {
  std::string run_id;
  bool on = true;
  void operator()(const std::string& msg) const {
    if (on) std::cerr << "[" << run_id << "] " << msg << std::endl;
  }
};

// The writer claims the run (Note [One writer]) and tells the other ranks what it found, with
// the database's id (which the ranks' checkpoints record).
RunRecord::Claim AgreeOnClaim(RunRecord& record, const RunRow& row, Comm* group) {
  RunRecord::Claim claim = record.ClaimRun(row);
  if (group == nullptr) return claim;
  constexpr int kIdChars = 32;
  at::Tensor message = at::zeros({kIdChars + 1}, at::kLong);
  if (record.writer()) {
    message[0] = static_cast<int64_t>(claim);
    const std::string& id = record.db_id();
    for (int i = 0; i < kIdChars && i < static_cast<int>(id.size()); ++i) {
      message[i + 1] = static_cast<int64_t>(id[i]);
    }
  }
  group->Broadcast(message, 0);
  const int64_t* m = message.data_ptr<int64_t>();
  std::string id;
  for (int i = 0; i < kIdChars && m[i + 1] != 0; ++i) id += static_cast<char>(m[i + 1]);
  record.set_db_id(id);
  return static_cast<RunRecord::Claim>(m[0]);
}

// Note [Checkpoint owner] in practice: which folder, which file, and whether it is ours.
class RunCheckpoints {
 public:
  RunCheckpoints(Training& t, const RunEnv& env, const CheckpointOwner& owner, const RunLog& log)
      : t_(t), owner_(owner), log_(log), explicit_dir_(!env.run_dir.empty()) {
    dir_ = explicit_dir_
               ? env.run_dir
               : (std::filesystem::path(env.db).parent_path() / "runs" / owner.run_id).string();
  }

  // Loads the newest checkpoint of this run (every rank's, on ranks); returns the position to
  // continue from (step 0: from scratch).
  TrainPosition Resume(bool* resumed) {
    std::string path = CheckpointPath(dir_, *t_.comm);
    std::string foreign = Foreign(path);
    // Every rank moves when one finds the default folder taken by another run's checkpoint.
    const bool moved = SumOverRanks(*t_.comm, {foreign.empty() ? 0.0 : 1.0})[0] > 0;
    if (moved) {
      if (explicit_dir_) {
        throw std::invalid_argument(
            "--run-dir " + dir_ + ": the checkpoint " + path + " is not this run's: " +
            (foreign.empty() ? "another rank's checkpoint there is not" : foreign) +
            "; refusing to load it (give an empty folder, or this run's own)");
      }
      log_("the checkpoint " + path + " is not this run's (" +
           (foreign.empty() ? "another rank's is not" : foreign) +
           "); not loading it; this run's checkpoints go to " + dir_ + ".db-" +
           owner_.db_id.substr(0, 8));
      dir_ += ".db-" + owner_.db_id.substr(0, 8);
      path = CheckpointPath(dir_, *t_.comm);
    }
    path_ = path;
    const int64_t current = UsableStep(path_);
    const int64_t previous = UsableStep(path_ + ".prev");
    bool use_prev = false;
    const int64_t step = CommonResumeStep(*t_.comm, current, previous, &use_prev);
    TrainPosition pos;
    *resumed = step >= 0;
    if (*resumed) {
      LoadCheckpoint(use_prev ? path_ + ".prev" : path_, t_.model, *t_.optimizer, &pos, t_.device);
      t_.update->Sync();  // the optimizer's state tensors were replaced
      log_("resumed from step " + std::to_string(pos.step));
    } else if (current >= 0 || previous >= 0) {
      log_("the ranks' checkpoints share no step; starting over");
    }
    return pos;
  }

  void Save(const TrainPosition& pos) {
    SaveCheckpoint(path_, t_.model, *t_.optimizer, pos, owner_, t_.device,
                   !t_.comm->plays_all_workers());
  }

 private:
  // Why the checkpoint at `path` is not this run's, or "" (ours, or none).
  std::string Foreign(const std::string& path) const {
    const CheckpointInfo info = ReadCheckpointInfo(path);
    if (info.step < 0) return "";
    return CheckpointOwnerMismatch(info, owner_);
  }
  // The checkpoint's step when it exists and is ours, else -1 (a foreign one is reported).
  int64_t UsableStep(const std::string& path) const {
    const CheckpointInfo info = ReadCheckpointInfo(path);
    if (info.step < 0) return -1;
    const std::string why = CheckpointOwnerMismatch(info, owner_);
    if (why.empty()) return info.step;
    log_("not loading " + path + ": " + why);
    return -1;
  }

  Training& t_;
  CheckpointOwner owner_;
  RunLog log_;
  bool explicit_dir_;
  std::string dir_, path_;
};

struct LoopTimes {
  double bookkeeping_seconds = 0, checkpoint_seconds = 0;
  std::optional<StepGraphs::Counts> graphs;  // cuda_graph on
};

// Steps pos.step + 1 .. max_steps. A metric window closes at every log step and every
// checkpoint, so a run resumed from a checkpoint logs exactly what the uninterrupted run logs.
LoopTimes TrainSteps(Training& t, RunRecord& record, RunEvaluation& eval, RunCheckpoints& ckpt,
                     TrainPosition& pos, TrainResult& result, const RunLog& log) {
  const RunSpec& spec = t.spec;
  const std::string& run_id = result.run_id;
  EpochBatches batches(t.data, spec);
  MetricWindow window(t.comm->topology().workers);
  LoopTimes times;
  t.model->train();
  // Note [Training step graphs]: captured on a GPU; on the CPU the same steps, eagerly.
  std::unique_ptr<StepGraphs> graphs;
  if (spec.cuda_graph == "on") {
    graphs = std::make_unique<StepGraphs>(t, t.device.is_cuda());
    if (!t.device.is_cuda()) {
      log("cuda_graph on the CPU: the graph steps run eagerly (padded shapes, checked warm-up)");
    }
  }
  for (int64_t step = pos.step + 1; step <= spec.max_steps; ++step) {
    const auto t0 = Clock::now();
    Batch batch = MakeBatch(batches.pool(), batches.ForStep(step), t.data.vocab);
    // Every rank's share, for the static-shape MoE path (Note [Static-shape path]).
    const std::vector<std::vector<RankShare>> shares =
        t.comm->plays_all_workers() ? std::vector<std::vector<RankShare>>{}
                                    : RankShares(batch, t.comm->size(), t.spec.grad_accum);
    StepValues v;
    try {
      if (graphs) {
        v = graphs->Step(batch, step);
      } else {
        v = TrainStep(t, ToDevice(ThisProcessShare(std::move(batch), *t.comm), t.device), step,
                      shares);
      }
    } catch (const c10::OutOfMemoryError& e) {  // a GPU's: say what to change
      throw std::runtime_error(ErrorText(e) + " (step " + std::to_string(step) + "); " +
                               OutOfMemoryAdvice(spec));
    }
    v.seconds = Seconds(t0, Clock::now());
    pos.step = step;
    pos.train_seconds += v.seconds;
    window.Add(v);

    const bool last = step == spec.max_steps;
    const bool checkpoint = step % spec.checkpoint_every == 0 || last;
    const auto b0 = Clock::now();
    if (WindowClosesAt(spec, step)) {
      const WindowRows rows = window.Close(step, pos.train_seconds, t, run_id);
      if (Store* store = record.store()) {
        store->LogMetrics(run_id, rows.metrics);
        store->LogComm(rows.comm);
        store->LogExpertLoad(rows.load);
        store->Heartbeat(run_id, getpid());
      }
      log("step " + std::to_string(step) + " loss " + std::to_string(rows.train_loss) + " tok/s " +
          std::to_string(static_cast<int64_t>(rows.tokens_per_second)) + " mfu " +
          FormatPercent(rows.mfu));
      result.tokens_per_second = rows.tokens_per_second;
    }
    times.bookkeeping_seconds += Seconds(b0, Clock::now());
    if (step % spec.eval_every == 0 || last) {
      const EvalResult r = eval.Validate(step, pos.train_seconds);
      result.final_valid_loss = r.loss;
      auto all = r.per_lang.find("");
      if (all != r.per_lang.end()) result.final_valid_bleu = all->second.bleu;
      log("valid loss " + std::to_string(r.loss) +
          (all != r.per_lang.end() ? " bleu " + std::to_string(all->second.bleu) : ""));
    }
    if (checkpoint) {
      const auto c0 = Clock::now();
      ckpt.Save(pos);
      times.checkpoint_seconds += Seconds(c0, Clock::now());
    }
  }
  if (graphs) {
    const StepGraphs::Counts& c = graphs->counts();
    log("graph steps: " + std::to_string(c.shapes) + " shapes, " + std::to_string(c.captures) +
        " captured, " + std::to_string(c.replays) + " replayed, " + std::to_string(c.eager) +
        " eager");
    times.graphs = c;
  }
  return times;
}

// What a finished run has stored (Store::FinishRun checks it).
Store::FinishCheck FinishRequirements(const Training& t) {
  Store::FinishCheck check;
  check.final_step = t.spec.max_steps;
  check.metric_keys = {"train_loss", "valid_loss", "train_seconds"};
  // Scores (evals rows) exist when sentences are decoded; the losses are metrics either way.
  if (t.spec.valid_sentences > 0) check.eval_splits = {"valid", "test"};
  check.comm_rows = !t.model->MoeLayers().empty();
  return check;
}

RunRow InitialRow(const RunSpec& spec, const std::string& run_id) {
  RunRow row;
  row.id = run_id;
  row.sweep_id = spec.sweep;
  row.method = spec.method;
  row.size = spec.size;
  row.seed = spec.seed;
  row.spec_json = spec.ToJson().dump(2);
  row.world_size = spec.world_size;
  // Who holds the run, from the moment it is claimed (Note [Stale runs]: a row is judged by
  // its host and pid).
  row.host = ThisHost();
  row.pid = getpid();
  return row;
}

}  // namespace

TrainResult TrainRun(RunSpec spec, const RunEnv& env) {
  ResolveKnobs(spec);
  const std::string run_id = spec.RunId();
  // Ranks of a process group: only rank 0 opens the database (SQLite on a shared file system
  // is unsafe for writers on several hosts) and records the run; the other ranks' errors go to
  // their output, and `moebench launch` / `train --world-size` add which rank failed first.
  const std::optional<DistEnv> dist = spec.world_size > 1 ? DetectDistEnv() : std::nullopt;
  const int my_rank = dist ? dist->rank : 0;
  // Note [Device and precision]: a rank uses GPU LOCAL_RANK of its node.
  const at::Device device = ResolveDevice(spec.device, dist ? dist->local_rank : 0);
  MakeCurrentDevice(device);
  const RunLog log{run_id, !env.quiet && my_rank == 0};
  // Ranks on one machine share its cores.
  const int threads =
      env.threads > 0 ? env.threads : DefaultThreads(dist ? dist->local_world_size : 1);
  RunRecord record(spec, env, my_rank == 0);
  // The process group comes first: the ranks must agree on whether there is anything to do.
  std::unique_ptr<Comm> group =
      spec.world_size > 1 ? MakeComm(spec, env, device.is_cuda()) : nullptr;
  TrainResult result;
  result.run_id = run_id;
  switch (AgreeOnClaim(record, InitialRow(spec, run_id), group.get())) {
    case RunRecord::Claim::kFinished:
      log("already finished; nothing to do");
      return result;
    case RunRecord::Claim::kBusy:
      // Not this process's run to record anything on.
      throw std::runtime_error(record.writer() ? record.busy_reason()
                                               : "rank 0 found the run held by another process");
    case RunRecord::Claim::kTrain:
      break;
  }
  if (record.writer()) WriteLaunchRecord(env.db, run_id);
  // Note [A rank that ended under another launcher].
  const std::vector<RankProcess> ranks = group ? group->processes() : std::vector<RankProcess>{};
  std::optional<StopSignalWatch> watch;
  if (record.writer() && group && !UnderMoebenchLauncher()) {
    watch.emplace([&ranks, my_rank, run_id, db = env.db, n = spec.world_size]() {
      RecordStoppedAfterEndedRank(db, run_id, ranks, my_rank, n);
    });
  }

  try {
    std::unique_ptr<Training> t = BuildTraining(spec, device, threads, std::move(group), env, dist);
    FillProvenance(record.mutable_row(), *t);
    record.UpdateRow();
    if (const std::string warning = BlasWarning(); !warning.empty()) log(warning);
    log("method " + spec.method + ", size " + spec.size + ": " + std::to_string(t->params.total) +
        " parameters (" + std::to_string(t->params.active) + " active per token), corpus " +
        std::to_string(t->data.train.size()) + " train examples, vocab " +
        std::to_string(t->data.vocab.size()));
    log("MFU against a peak of " + FormatTflops(t->peak.flops_per_s) + " TFLOP/s (" +
        t->peak.source + ")");

    const CheckpointOwner owner{run_id, Sha256Hex(spec.CanonicalJson()), record.db_id()};
    RunCheckpoints checkpoints(*t, env, owner, log);
    TrainPosition pos = checkpoints.Resume(&result.resumed);
    if (Store* store = record.store())
      store->DeleteRunDataAfter(run_id, result.resumed ? pos.step : -1);
    RunEvaluation eval(*t, record, run_id);
    if (pos.step == 0) result.first_valid_loss = eval.Initial().loss;
    const LoopTimes times = TrainSteps(*t, record, eval, checkpoints, pos, result, log);
    result.steps = pos.step;
    result.train_seconds = pos.train_seconds;
    eval.Final(pos.step, pos.train_seconds);
    if (!t->comm->plays_all_workers()) t->comm->Barrier();  // no rank leaves while others need it
    if (Store* store = record.store()) {
      // Outside the timed steps: metric collection and database writes at log steps, and
      // checkpoints (this process's share of them, since it started or resumed).
      const double wall = pos.train_seconds;
      store->LogMetrics(run_id, {{pos.step, wall, "train_seconds", wall},
                                 {pos.step, wall, "bookkeeping_seconds", times.bookkeeping_seconds},
                                 {pos.step, wall, "checkpoint_seconds", times.checkpoint_seconds}});
      if (times.graphs) {  // this process's steps since it started or resumed
        const StepGraphs::Counts& c = *times.graphs;
        store->LogMetrics(run_id,
                          {{pos.step, wall, "graph_shapes", static_cast<double>(c.shapes)},
                           {pos.step, wall, "graph_captures", static_cast<double>(c.captures)},
                           {pos.step, wall, "graph_replays", static_cast<double>(c.replays)},
                           {pos.step, wall, "graph_eager_steps", static_cast<double>(c.eager)}});
      }
      record.Finish(FinishRequirements(*t));
    }
    // Resumed at the last step: the results are the stored ones.
    if (pos.step == spec.max_steps && result.tokens_per_second == 0) {
      result.tokens_per_second = record.Latest("tokens_per_s").value_or(0);
      result.final_valid_loss = record.Latest("valid_loss").value_or(0);
      result.final_valid_bleu = record.Latest("valid_bleu").value_or(0);
    }
    log("finished in " + std::to_string(pos.train_seconds) + " s of training");
    return result;
  } catch (const std::exception& e) {
    std::string what = spec.world_size > 1
                           ? "rank " + std::to_string(my_rank) + " of " +
                                 std::to_string(spec.world_size) + ": " + ErrorText(e)
                           : ErrorText(e);
    // A failed collective most likely means that a peer died: name it (when on this host).
    if (const std::string ended = EndedRanks(ranks, my_rank, 1.0); !ended.empty()) {
      what += "; " + ended + " ended first";
    }
    record.Fail(what);
    // Keep a failed collective recognisable (Note [Which rank failed]).
    if (dynamic_cast<const CollectiveError*>(&e) != nullptr) throw CollectiveError(what);
    throw std::runtime_error(what);
  }
}

}  // namespace moebench
