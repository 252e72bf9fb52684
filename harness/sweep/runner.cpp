#include "harness/sweep/runner.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <thread>

#include "harness/sweep/progress.h"
#include "harness/sweep/sweep_folder.h"
#include "harness/util/process.h"

extern char** environ;

namespace moebench {

// Note [Sweep runner]
// One run is one process tree (`moebench train --run-spec <sweep dir>/<id>/spec.json`), in its
// own process group, so a crash or an out-of-memory kill ends that run alone. Before starting
// a run the runner claims it in the database (pending -> running in one UPDATE), so two sweeps
// sharing a database never start the same run twice. A child is told to die with the runner
// (PR_SET_PDEATHSIG): kill -9 of the sweep leaves rows `running` whose processes are gone, and
// the next sweep (or `moebench runs`) finds them by their pid and puts them back to pending;
// `train` then resumes each from its last checkpoint and drops its rows after that step, so
// nothing is duplicated and nothing finished is lost. A run that dies on its own (a signal, a
// non-zero exit) is recorded failed, or killed for SIGKILL/SIGTERM/SIGINT/SIGHUP, with its
// reason and the tail of its log; --retry-failed runs it again.

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop_signal = 0;
void OnStopSignal(int signal) { g_stop_signal = signal; }

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int UsableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string SelfExe() {
  std::string exe = OwnExecutablePath();
  if (exe.empty()) {
    throw std::runtime_error("sweep: cannot find this program's path (/proc/self/exe)");
  }
  return exe;
}

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string Label(const RunSpec& s) {
  return s.method + " " + s.size + " seed " + std::to_string(s.seed);
}

// The child's environment: ours, with thread settings for its share of the cores.
std::vector<std::string> ChildEnvironment(int threads) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; e++) {
    const std::string kv = *e;
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  // See docs/PERFORMANCE.md: busy-waiting threads cost more than anything else on a small machine.
  env.emplace("OMP_WAIT_POLICY", "PASSIVE");
  env.emplace("OPENBLAS_THREAD_TIMEOUT", "4");
  env["OMP_NUM_THREADS"] = std::to_string(threads);
  env["OPENBLAS_NUM_THREADS"] = std::to_string(threads);
  env["MOEBENCH_ENV_READY"] = "1";  // set above; no need for the child to re-execute itself
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

// One run's process: its own process group, killed with the runner (PR_SET_PDEATHSIG), stdin
// from /dev/null, stdout and stderr appended to its log.
pid_t StartRun(const std::vector<std::string>& args, const std::vector<std::string>& env,
               const std::string& log_path) {
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    throw std::runtime_error("sweep: cannot open " + log_path + ": " + std::strerror(errno));
  }
  SpawnOptions so;
  so.environment = env;
  so.stdin_null = true;
  so.stdout_fd = log_fd;
  so.stderr_fd = log_fd;
  so.new_process_group = true;
  so.death_signal = SIGKILL;
  so.exec_error_prefix = "moebench sweep: cannot execute the moebench binary: ";
  pid_t pid = -1;
  try {
    pid = Spawn(args, so);
  } catch (const std::exception& e) {
    close(log_fd);
    throw std::runtime_error(std::string("sweep: ") + e.what());
  }
  close(log_fd);
  return pid;
}

class Runner {
 public:
  Runner(const SweepRow& sweep, const std::vector<PlannedRun>& runs, const RunnerOptions& opt,
         std::ostream& out)
      : sweep_(sweep),
        runs_(runs),
        opt_(opt),
        display_(out, opt.terminal),
        host_(ThisHost()),
        exe_(opt.exe.empty() ? SelfExe() : opt.exe) {
    const int cores = UsableCores();
    threads_ = opt.threads_per_job > 0 ? opt.threads_per_job : std::max(1, cores / opt.jobs);
    if (opt.jobs * threads_ > cores) {
      display_.Event("note: " + std::to_string(opt.jobs) + " jobs x " + std::to_string(threads_) +
                     " threads on " + std::to_string(cores) + " cores oversubscribes them");
    }
    for (const PlannedRun& r : runs_) by_id_[r.id] = &r;
  }

  SweepOutcome Run() {
    start_ = Clock::now();
    Prepare();
    SweepOutcome outcome;
    auto last_stale_check = Clock::now();
    while (true) {
      if (g_stop_signal != 0) {
        StopChildren(g_stop_signal);
        outcome.interrupted = true;
        break;
      }
      Reap();
      Refresh();
      if (Seconds(last_stale_check, Clock::now()) > 5) {
        last_stale_check = Clock::now();
        RequeueForeignStale();
      }
      StartMore();
      if (children_.empty() && !AnyClaimable() && !AnyForeignRunning()) break;
      display_.Update(Snapshot());
      std::this_thread::sleep_for(std::chrono::duration<double>(opt_.poll_seconds));
    }
    Refresh();
    display_.Close();
    outcome.total = static_cast<int>(runs_.size());
    outcome.already_finished = already_finished_;
    outcome.finished = finished_here_;
    for (const auto& [id, row] : rows_) {
      if (row.status == RunStatus::kFailed || row.status == RunStatus::kKilled) outcome.failed++;
      if (row.status == RunStatus::kPending) outcome.pending++;
    }
    outcome.wall_s = Seconds(start_, Clock::now());
    outcome.run_process_s = run_process_s_;
    outcome.train_s = train_s_;
    outcome.eval_s = eval_s_;
    return outcome;
  }

 private:
  struct Child {
    pid_t pid = 0;
    std::string run_id;
    Clock::time_point start;
    bool resumed = false;  // it had trained before: its totals are not this process's alone
  };

  std::string DbPathFor(const std::string& id) const {
    return opt_.per_run_db ? RunDbPath(opt_.sweep_dir, id) : opt_.db;
  }

  Store& DbFor(const std::string& id) {
    const std::string path = DbPathFor(id);
    auto it = stores_.find(path);
    if (it != stores_.end()) return *it->second;
    auto store = std::make_unique<Store>(path);
    // Keep the first creation time of a sweep seen again.
    SweepRow row = sweep_;
    if (auto existing = store->GetSweep(sweep_.id); existing && existing->id == sweep_.id) {
      row.created_at = existing->created_at;
    }
    store->UpsertSweep(row);
    Store& ref = *store;
    stores_[path] = std::move(store);
    return ref;
  }

  void Prepare() {
    for (const PlannedRun& r : runs_) {
      Store& db = DbFor(r.id);
      RunRow row;
      row.id = r.id;
      row.sweep_id = sweep_.id;
      row.method = r.spec.method;
      row.size = r.spec.size;
      row.seed = r.spec.seed;
      row.spec_json = r.spec.ToJson().dump(2);
      db.InsertRunIfAbsent(row);
      db.SetRunSweep(r.id, sweep_.id);
    }
    Refresh();
    for (const PlannedRun& r : runs_) {
      const RunRow& row = rows_[r.id];
      if (row.status == RunStatus::kRunning) {
        const std::string reason = StaleReason(row, host_, opt_.stale_after);
        if (!reason.empty() && DbFor(r.id).RequeueRun(r.id, row.pid, reason)) {
          display_.Event("resuming " + r.id + " (" + Label(r.spec) + "): " + reason);
        }
      } else if (opt_.retry_failed &&
                 (row.status == RunStatus::kFailed || row.status == RunStatus::kKilled)) {
        DbFor(r.id).SetRunStatus(r.id, RunStatus::kPending, "retrying after: " + row.error);
        display_.Event("retrying " + r.id + " (" + Label(r.spec) + ")");
      }
    }
    Refresh();
    for (const auto& [id, row] : rows_) {
      if (row.status == RunStatus::kFinished) already_finished_++;
    }
    display_.Event(std::to_string(runs_.size()) + " runs in sweep " + sweep_.id + ": " +
                   std::to_string(already_finished_) + " already finished; " +
                   std::to_string(opt_.jobs) + " at a time, " + std::to_string(threads_) +
                   " threads each");
  }

  void Refresh() {
    for (const PlannedRun& r : runs_) {
      auto row = DbFor(r.id).FindRun(r.id);
      if (row && row->id == r.id) rows_[r.id] = *row;
    }
  }

  bool Ours(const std::string& id) const {
    for (const Child& c : children_) {
      if (c.run_id == id) return true;
    }
    return false;
  }

  bool CanStartMore() const { return opt_.max_runs < 0 || started_ < opt_.max_runs; }

  bool AnyClaimable() const {
    if (!CanStartMore()) return false;
    for (const auto& [id, row] : rows_) {
      if (row.status == RunStatus::kPending && !Ours(id)) return true;
    }
    return false;
  }

  bool AnyForeignRunning() const {
    for (const auto& [id, row] : rows_) {
      if (row.status == RunStatus::kRunning && !Ours(id)) return true;
    }
    return false;
  }

  void RequeueForeignStale() {
    for (const auto& [id, row] : rows_) {
      if (row.status != RunStatus::kRunning || Ours(id)) continue;
      const std::string reason = StaleReason(row, host_, opt_.stale_after);
      if (!reason.empty() && DbFor(id).RequeueRun(id, row.pid, reason)) {
        display_.Event("resuming " + id + ": " + reason);
      }
    }
  }

  void StartMore() {
    for (const PlannedRun& r : runs_) {
      if (static_cast<int>(children_.size()) >= opt_.jobs || !CanStartMore()) return;
      if (rows_[r.id].status != RunStatus::kPending || Ours(r.id)) continue;
      Store& db = DbFor(r.id);
      if (!db.ClaimRun(r.id, getpid(), host_)) continue;  // another runner took it
      const std::string log = RunLogPath(opt_.sweep_dir, r.id);
      {
        std::FILE* f = std::fopen(log.c_str(), "a");
        if (f != nullptr) {
          std::fprintf(f, "=== moebench sweep %s: starting run %s with %d threads\n",
                       sweep_.id.c_str(), r.id.c_str(), threads_);
          std::fclose(f);
        }
      }
      const std::vector<std::string> args = {
          exe_,   "train",         "--run-spec", RunSpecPath(opt_.sweep_dir, r.id),
          "--db", DbPathFor(r.id), "--threads",  std::to_string(threads_)};
      Child child;
      try {
        child.pid = StartRun(args, ChildEnvironment(threads_), log);
      } catch (const std::exception& e) {
        db.SetRunStatus(r.id, RunStatus::kFailed, e.what());
        display_.Event("FAILED to start " + r.id + ": " + e.what());
        continue;
      }
      child.run_id = r.id;
      child.start = Clock::now();
      child.resumed = !db.LatestMetrics(r.id).empty();
      children_.push_back(child);
      started_++;
      rows_[r.id].status = RunStatus::kRunning;
      display_.Event("started  " + r.id + " (" + Label(r.spec) + "), log " + log);
    }
  }

  void Reap() {
    while (true) {
      const std::optional<std::pair<pid_t, ExitStatus>> ended = PollAnyChild();
      if (!ended) return;
      const pid_t pid = ended->first;
      auto it = std::find_if(children_.begin(), children_.end(),
                             [pid](const Child& c) { return c.pid == pid; });
      if (it == children_.end()) continue;
      const Child child = *it;
      children_.erase(it);
      HandleExit(child, ended->second);
    }
  }

  void HandleExit(const Child& child, const ExitStatus& status) {
    const double wall = Seconds(child.start, Clock::now());
    const std::string& id = child.run_id;
    const PlannedRun& run = *by_id_[id];
    Store& db = DbFor(id);
    auto row = db.FindRun(id);
    const std::string log = RunLogPath(opt_.sweep_dir, id);
    if (row && row->status == RunStatus::kFinished) {
      finished_here_++;
      const auto latest = db.LatestMetrics(id);
      if (!child.resumed) {
        // The time breakdown covers runs that trained from scratch in this invocation: a
        // resumed run's training seconds include those of earlier processes.
        run_process_s_ += wall;
        finished_wall_ += wall;
        finished_steps_ += static_cast<double>(run.spec.max_steps);
        if (auto t = latest.find("train_seconds"); t != latest.end()) train_s_ += t->second.value;
        for (const MetricRow& m : db.MetricHistory(id, "eval_seconds")) eval_s_ += m.value;
      }
      std::string bleu;
      if (auto b = latest.find("valid_bleu"); b != latest.end()) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), ", valid BLEU %.2f", b->second.value);
        bleu = buf;
      }
      display_.Event("finished " + id + " (" + Label(run.spec) + ") in " + FormatDuration(wall) +
                     bleu);
    } else {
      RunStatus final_status = RunStatus::kFailed;
      std::string reason;
      const int exit_code = status.code;
      if (status.signal != 0) {
        const int sig = status.signal;
        reason = DescribeSignal(sig);
        if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
          final_status = RunStatus::kKilled;
        }
      } else {
        if (row && row->status == RunStatus::kFailed && !row->error.empty()) {
          reason = row->error;
        } else {
          reason = "exited with code " + std::to_string(exit_code) +
                   (exit_code == 0 ? " without finishing" : "");
        }
      }
      const std::string tail = FileTail(log, 20);
      db.SetRunStatus(id, final_status, reason + "\n--- last lines of " + log + " ---\n" + tail,
                      exit_code);
      display_.Event(std::string(final_status == RunStatus::kKilled ? "KILLED " : "FAILED ") + id +
                     " (" + Label(run.spec) + "): " + FirstLine(reason) + "; log " + log);
    }
    // `train` writes the spec's own (empty) sweep tag; the run belongs to this sweep.
    db.SetRunSweep(id, sweep_.id);
  }

  void StopChildren(int signal) {
    display_.Event("stopping on signal " + std::to_string(signal) + ": ending " +
                   std::to_string(children_.size()) + " running run(s); they resume next time");
    for (const Child& c : children_) kill(-c.pid, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!children_.empty() && Clock::now() < deadline) {
      for (auto it = children_.begin(); it != children_.end();) {
        if (PollExit(it->pid)) {
          it = children_.erase(it);
        } else {
          ++it;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (const Child& c : children_) {
      kill(-c.pid, SIGKILL);
      try {
        WaitFor(c.pid);
      } catch (const std::runtime_error&) {
        // already reaped: nothing left to wait for
      }
    }
    children_.clear();
    for (const auto& [id, row] : rows_) {
      if (row.status != RunStatus::kRunning) continue;
      DbFor(id).RequeueRun(id, 0,
                           "interrupted: the sweep was stopped; resumes from its checkpoint");
    }
  }

  ProgressSnapshot Snapshot() {
    ProgressSnapshot s;
    s.total = static_cast<int>(runs_.size());
    s.elapsed_s = Seconds(start_, Clock::now());
    double remaining_steps = 0;
    double seconds_per_step = -1;
    double rate_sum = 0;
    int rate_n = 0;
    for (const auto& [id, row] : rows_) {
      const PlannedRun& r = *by_id_[id];
      if (Ours(id)) continue;  // counted as running until reaped
      if (row.status == RunStatus::kFinished) s.finished++;
      if (row.status == RunStatus::kFailed || row.status == RunStatus::kKilled) s.failed++;
      if (row.status == RunStatus::kPending) {
        s.pending++;
        remaining_steps += static_cast<double>(r.spec.max_steps);
      }
    }
    for (const Child& c : children_) {
      const PlannedRun& r = *by_id_[c.run_id];
      RunningRun rr;
      rr.id = c.run_id;
      rr.label = Label(r.spec);
      rr.max_steps = r.spec.max_steps;
      rr.elapsed_s = Seconds(c.start, Clock::now());
      const auto latest = DbFor(c.run_id).LatestMetrics(c.run_id);
      if (auto it = latest.find("train_loss"); it != latest.end()) {
        rr.step = it->second.step;
        rr.train_loss = it->second.value;
      }
      if (auto it = latest.find("tokens_per_s"); it != latest.end()) {
        rr.tokens_per_s = it->second.value;
      }
      remaining_steps += static_cast<double>(std::max<int64_t>(0, rr.max_steps - rr.step));
      if (rr.step > 0) {
        rate_sum += rr.elapsed_s / static_cast<double>(rr.step);
        rate_n++;
      }
      s.running.push_back(rr);
    }
    for (const auto& [id, row] : rows_) {
      if (row.status != RunStatus::kRunning || Ours(id)) continue;
      RunningRun rr;
      rr.id = id;
      rr.label = Label(by_id_[id]->spec) + " (elsewhere)";
      rr.max_steps = by_id_[id]->spec.max_steps;
      s.running.push_back(rr);
    }
    if (finished_steps_ > 0) {
      seconds_per_step = finished_wall_ / finished_steps_;
    } else if (rate_n > 0) {
      seconds_per_step = rate_sum / rate_n;
    }
    if (seconds_per_step > 0) {
      const int parallel =
          std::max(1, std::min(opt_.jobs, s.pending + static_cast<int>(children_.size())));
      s.eta_s = remaining_steps * seconds_per_step / parallel;
    }
    return s;
  }

  const SweepRow& sweep_;
  const std::vector<PlannedRun>& runs_;
  RunnerOptions opt_;
  ProgressDisplay display_;
  std::string host_, exe_;
  int threads_ = 1;
  std::map<std::string, const PlannedRun*> by_id_;
  std::map<std::string, std::unique_ptr<Store>> stores_;
  std::map<std::string, RunRow> rows_;
  std::vector<Child> children_;
  Clock::time_point start_;
  int64_t started_ = 0;
  int already_finished_ = 0, finished_here_ = 0;
  double run_process_s_ = 0, train_s_ = 0, eval_s_ = 0;
  double finished_wall_ = 0, finished_steps_ = 0;  // for the ETA
};

}  // namespace

std::string DescribeSignal(int signal) {
  return "killed by signal " + std::to_string(signal) + " (" + SignalName(signal) + ")";
}

SweepOutcome RunSweep(const SweepRow& sweep, const std::vector<PlannedRun>& runs,
                      const RunnerOptions& opt, std::ostream& out) {
  if (opt.jobs < 1) throw std::invalid_argument("--jobs must be at least 1");
  g_stop_signal = 0;
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {
  }, old_term{};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  Runner runner(sweep, runs, opt, out);
  SweepOutcome outcome;
  try {
    outcome = runner.Run();
  } catch (...) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    throw;
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return outcome;
}

}  // namespace moebench
