// All-to-all throughput over Gloo on loopback, 2 ranks. The benchmark process is rank 0; on
// first use it starts its peer (this binary again, with MOEBENCH_BENCH_PEER=1 and torchrun's
// variables), which runs the same exchanges on command. Each step is one MeteredExchange of a
// [rows, d] fp32 buffer, half of the rows to each rank (a balanced 2-worker layer), so the byte
// meter counts exactly what the timed collective moved; GBps = counted off-rank bytes / time.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_registry.h"
#include "harness/comm/c10d_comm.h"
#include "harness/comm/launcher.h"
#include "harness/moe/exchange.h"
#include "harness/util/process.h"

namespace moebench::bench {

namespace {

constexpr const char* kPeerEnv = "MOEBENCH_BENCH_PEER";
constexpr double kTimeoutS = 120;

ExchangeSpec HalfAndHalf(int64_t rows, int rank) {
  ExchangeSpec spec;
  spec.layer = 0;
  spec.move = true;
  spec.only_source = rank;
  const int64_t half = rows / 2;
  spec.rows = {rows - half, half, half, rows - half};  // [src * 2 + dst]
  return spec;
}

std::unique_ptr<C10dComm> Join(int rank, int port) {
  C10dOptions opt;
  opt.env.source = "bench";
  opt.env.rank = rank;
  opt.env.world_size = 2;
  opt.env.local_rank = rank;
  opt.env.local_world_size = 2;
  opt.env.master_addr = "127.0.0.1";
  opt.env.master_port = port;
  opt.topology = Topology{2, 2};
  opt.timeout_s = kTimeoutS;
  return std::make_unique<C10dComm>(opt);
}

// Steps both ranks run for one command: [rows, d, steps]; rows = 0 ends the peer.
double ExchangeSteps(C10dComm& comm, int64_t rows, int64_t d, int64_t steps,
                     std::vector<double>* ms) {
  ExchangeSpec spec = HalfAndHalf(rows, comm.rank());
  spec.wire_bytes.assign(4, 0);
  for (int s = 0; s < 2; ++s) {
    for (int t = 0; t < 2; ++t) {
      if (s != t) spec.wire_bytes[s * 2 + t] = spec.rows[s * 2 + t] * d * 4;
    }
  }
  const at::Tensor x = at::randn({rows, d});
  double checksum = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const double t0 = NowMs();
    const at::Tensor y = MeteredExchange(comm, x, spec);
    if (ms) ms->push_back(NowMs() - t0);
    checksum += static_cast<double>(y.size(0));
  }
  return checksum;
}

// Rank 0's side: the peer process and the group, made on first use, ended at exit.
class PeerGroup {
 public:
  static PeerGroup& Get() {
    if (!instance_) instance_.reset(new PeerGroup());
    return *instance_;
  }
  static void Shutdown() { instance_.reset(); }
  C10dComm& comm() { return *comm_; }
  void Command(int64_t rows, int64_t d, int64_t steps) {
    at::Tensor cmd = at::tensor(std::vector<int64_t>{rows, d, steps});
    comm_->Broadcast(cmd, 0);
  }
  ~PeerGroup() {
    try {
      Command(0, 0, 0);
    } catch (const std::exception&) {
    }
    comm_.reset();
    try {
      WaitFor(peer_);
    } catch (const std::exception&) {
    }
  }

 private:
  PeerGroup() {
    const int port = FreePort();
    SpawnOptions so;
    so.set_env = {{kPeerEnv, std::to_string(port)}};
    peer_ = Spawn({OwnExecutablePath()}, so);
    comm_ = Join(0, port);
  }
  static std::unique_ptr<PeerGroup> instance_;
  pid_t peer_ = -1;
  std::unique_ptr<C10dComm> comm_;
};

std::unique_ptr<PeerGroup> PeerGroup::instance_;

struct A2AShape {
  int64_t rows, d;
};

void RunAllToAll(benchmark::State& state, const BenchConfig& config, A2AShape s) {
  PeerGroup& group = PeerGroup::Get();
  C10dComm& comm = group.comm();
  const int64_t steps = config.warmup + config.iterations;
  group.Command(s.rows, s.d, steps);
  comm.meter().Drain();
  std::vector<double> ms;
  for (auto _ : state) {
    // One command runs every step; Google Benchmark's single iteration reports their median.
    ExchangeSteps(comm, s.rows, s.d, steps, &ms);
    ms.erase(ms.begin(), ms.begin() + config.warmup);
    state.SetIterationTime(Median(ms) / 1000.0);
  }
  const auto drained = comm.meter().Drain();
  CommCounters total;
  for (const auto& [key, c] : drained) total.Add(c);
  const double calls = static_cast<double>(total.calls);
  const double off_rank = static_cast<double>(total.logical_off_worker()) / calls;  // per call
  const double median = Median(ms);
  state.counters["ms"] = median;
  state.counters["off_rank_MB"] = off_rank / 1e6;
  state.counters["expected_MB"] = static_cast<double>(s.rows / 2 * s.d * 4) / 1e6;
  state.counters["GBps"] = off_rank / (median / 1000.0) / 1e9;
  state.counters["modeled_ms"] = total.modeled_ms / calls;
}

}  // namespace

void ShutdownAllToAllPeer() { PeerGroup::Shutdown(); }

int RunBenchPeerIfAsked() {
  const char* port = std::getenv(kPeerEnv);
  if (port == nullptr) return -1;
  try {
    std::unique_ptr<C10dComm> comm = Join(1, std::atoi(port));
    for (;;) {
      at::Tensor cmd = at::zeros({3}, at::kLong);
      comm->Broadcast(cmd, 0);
      const int64_t rows = cmd[0].item<int64_t>();
      if (rows == 0) return 0;
      ExchangeSteps(*comm, rows, cmd[1].item<int64_t>(), cmd[2].item<int64_t>(), nullptr);
    }
  } catch (const std::exception& e) {
    std::cerr << "moebench_bench peer: " << e.what() << std::endl;
    return 1;
  }
}

void RegisterAllToAllBenchmarks(const BenchConfig& config) {
  if (!C10dHasGloo()) {
    std::cerr << "moebench_bench: no AllToAll/gloo benchmarks: this build has no Gloo "
                 "(docs/gpu.md)\n";
    return;
  }
  const std::vector<A2AShape> shapes =
      config.smoke ? std::vector<A2AShape>{{256, 64}}
                   : std::vector<A2AShape>{{2048, 256}, {2048, 512}, {8192, 256}, {8192, 512}};
  for (const A2AShape& s : shapes) {
    const std::string name =
        "AllToAll/gloo/rows:" + std::to_string(s.rows) + "/d:" + std::to_string(s.d);
    benchmark::RegisterBenchmark(name.c_str(),
                                 [config, s](benchmark::State& st) { RunAllToAll(st, config, s); })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace moebench::bench
