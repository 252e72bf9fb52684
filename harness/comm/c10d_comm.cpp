#include "harness/comm/c10d_comm.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "harness/comm/c10d_compat.h"
#include "harness/comm/launcher.h"
#include "harness/store/liveness.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>

namespace moebench {

struct C10dComm::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::C10dBackend> pg;
  std::string backend;
  std::chrono::milliseconds timeout{0};

  void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      // NCCL: wait() makes the current stream wait for the collective's, and the group's own
      // timeout (its watchdog) bounds it; wait(timeout) would also make the host poll until the
      // collective completes (PyTorch 2.x: "synchronize, then poll isCompleted() to enforce the
      // timeout"), a host wait per collective that the static MoE path exists to avoid. Gloo's
      // work completes on the host either way: its bound is the call's.
      if (backend == "nccl") {
        work->wait();
      } else {
        work->wait(timeout);
      }
    } catch (const std::exception& e) {
      // c10 errors carry a C++ stack trace after the first line; keep the message.
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));
      throw CollectiveError(std::string("c10d ") + what + " failed: " + msg);
    }
  }
};

namespace {

// Open MPI on one host (Note [Rank environment]): rank 0 writes its store's port atomically;
// the others wait for the file.
void WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp" + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << port << "\n";
    if (!f.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
}

int WaitForPortFile(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::ifstream f(path);
    int port = 0;
    if (f && (f >> port) && port > 0 && port <= 65535) return port;
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("rank 0 wrote no port to " + path + " within the timeout");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

#ifdef MOEBENCH_GLOO
std::shared_ptr<::gloo::transport::Device> GlooDevice(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (master_addr == "127.0.0.1" || master_addr == "localhost") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

}  // namespace

bool C10dHasGloo() {
#ifdef MOEBENCH_GLOO
  return true;
#else
  return false;
#endif
}

bool C10dHasNccl() {
#ifdef MOEBENCH_CUDA
  return true;
#else
  return false;
#endif
}

C10dComm::C10dComm(const C10dOptions& opt)
    : impl_(std::make_unique<Impl>()),
      topology_(opt.topology),
      rank_(opt.env.rank),
      size_(opt.env.world_size) {
  if (topology_.workers != size_) {
    throw std::invalid_argument("C10dComm: topology has " + std::to_string(topology_.workers) +
                                " workers but the world size is " + std::to_string(size_));
  }
  if (opt.timeout_s <= 0) throw std::invalid_argument("C10dComm: timeout must be > 0");
  if (!opt.cuda && !C10dHasGloo()) {
    throw std::invalid_argument(
        "C10dComm: this build has no Gloo (gloo's headers were not found when it was configured; "
        "see docs/gpu.md): CPU ranks need a CPU build, GPU ranks use NCCL (--device cuda)");
  }
  impl_->timeout = std::chrono::milliseconds(static_cast<int64_t>(opt.timeout_s * 1000));
  // Note [Rank environment] in dist_env.h: who serves the store, and on which port.
  c10d::TCPStoreOptions so;
  int port = opt.env.master_port;
  so.isServer = rank_ == 0 && !opt.env.agent_store;
  so.numWorkers = static_cast<size_t>(size_);
  // Under torchrun's agent the store is the agent's: its clients need not count themselves in.
  // With a port file the server cannot wait for workers that do not know its port yet.
  so.waitWorkers = !opt.env.agent_store && opt.env.port_file.empty();
  so.timeout = impl_->timeout;
  try {
    if (!opt.env.port_file.empty() && !so.isServer) {
      port = WaitForPortFile(opt.env.port_file, impl_->timeout);
    }
    so.port = static_cast<std::uint16_t>(port);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(opt.env.master_addr, so);
    if (!opt.env.port_file.empty()) {
      // Rank 0 removes the file once every rank has read it: a later run of the same mpirun
      // job must not read this run's port.
      const std::string key = "moebench/port_file_read";
      if (so.isServer) {
        port = tcp->getPort();
        WritePortFile(opt.env.port_file, port);
        const auto deadline = std::chrono::steady_clock::now() + impl_->timeout;
        while (tcp->add(key, 0) < size_ - 1) {
          if (std::chrono::steady_clock::now() > deadline) {
            throw std::runtime_error("only " + std::to_string(tcp->add(key, 0)) + " of " +
                                     std::to_string(size_ - 1) +
                                     " ranks connected within the timeout");
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::remove(opt.env.port_file.c_str());
      } else {
        tcp->add(key, 1);
      }
    }
    impl_->store = tcp;
    if (!opt.env.store_prefix.empty()) {
      impl_->store = c10::make_intrusive<c10d::PrefixStore>(opt.env.store_prefix, impl_->store);
    }
  } catch (const std::exception& e) {
    std::string where = opt.env.master_addr + ":" + std::to_string(port);
    if (opt.env.agent_store) where += " (torchrun's agent store)";
    if (!opt.env.port_file.empty()) where += " (port from " + opt.env.port_file + ")";
    throw std::runtime_error("c10d rendezvous at " + where + " failed (rank " +
                             std::to_string(rank_) + " of " + std::to_string(size_) +
                             "): " + e.what());
  }
  if (opt.cuda) {
#ifdef MOEBENCH_CUDA
    const std::string mismatch = compat::NcclHeaderMismatch();
    if (!mismatch.empty()) throw std::runtime_error("C10dComm: " + mismatch);
    auto nopt = c10d::ProcessGroupNCCL::Options::create();
    nopt->timeout = impl_->timeout;
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, rank_, size_, nopt);
    impl_->backend = "nccl";
#else
    throw std::invalid_argument("C10dComm: NCCL needs a CUDA build (-DMOEBENCH_CUDA=ON)");
#endif
  } else {
#ifdef MOEBENCH_GLOO
    auto gopt = c10d::ProcessGroupGloo::Options::create(impl_->timeout);
    gopt->devices.push_back(GlooDevice(opt.env.master_addr));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, rank_, size_, gopt);
    impl_->backend = "gloo";
#endif
  }
  AnnounceProcesses();
}

void C10dComm::AnnounceProcesses() {
  // Only for messages: a store that cannot take it costs the names, not the run.
  try {
    const std::string me = ThisHost() + " " + std::to_string(getpid());
    const std::string prefix = "moebench/process/";
    impl_->store->set(prefix + std::to_string(rank_), std::vector<uint8_t>(me.begin(), me.end()));
    for (int r = 0; r < size_; ++r) {
      const std::vector<uint8_t> v = impl_->store->get(prefix + std::to_string(r));
      const std::string s(v.begin(), v.end());
      const size_t space = s.rfind(' ');
      if (space == std::string::npos) continue;
      processes_.push_back({r, s.substr(0, space), std::stoll(s.substr(space + 1))});
    }
  } catch (const std::exception&) {
    processes_.clear();
  }
}

C10dComm::~C10dComm() = default;

std::string C10dComm::backend() const { return impl_->backend; }

at::Tensor C10dComm::AllToAll(const at::Tensor& send, const std::vector<int64_t>& rows) {
  const int w = size_;
  if (rows.size() != static_cast<size_t>(w * w)) {
    throw std::logic_error("C10dComm::AllToAll: rows must have W*W entries");
  }
  std::vector<int64_t> in_counts(w), out_counts(w);
  int64_t in_total = 0, out_total = 0;
  for (int p = 0; p < w; ++p) {
    in_counts[p] = rows[rank_ * w + p];
    out_counts[p] = rows[p * w + rank_];
    in_total += in_counts[p];
    out_total += out_counts[p];
  }
  if (in_total != send.size(0)) {
    throw std::logic_error("C10dComm::AllToAll: rows to send add up to " +
                           std::to_string(in_total) + " but the buffer has " +
                           std::to_string(send.size(0)));
  }
  // Gloo (1.13) moves no bf16 ("Invalid scalar type") but moves fp16; an all-to-all only
  // copies bytes, so bf16 rows travel as fp16 of the same bits.
  const at::ScalarType type = send.scalar_type();
  const bool as_bits = impl_->backend == "gloo" && type == at::kBFloat16;
  at::Tensor input = as_bits ? send.contiguous().view(at::kHalf) : send.contiguous();
  std::vector<int64_t> shape = input.sizes().vec();
  shape[0] = out_total;
  at::Tensor output = at::empty(shape, input.options());
  impl_->Wait(impl_->pg->alltoall_base(output, input, out_counts, in_counts), "all-to-all");
  return as_bits ? output.view(type) : output;
}

// NCCL moves only CUDA tensors: small host tensors (counts, scalars) make a round trip.
namespace {
bool NeedsDevice(const std::string& backend, const at::Tensor& t) {
  return backend == "nccl" && !t.is_cuda();
}
}  // namespace

void C10dComm::AllReduceSum(at::Tensor& tensor) {
  const bool move = NeedsDevice(impl_->backend, tensor);
  std::vector<at::Tensor> t = {move ? tensor.to(at::kCUDA) : tensor};
  impl_->Wait(impl_->pg->allreduce(t), "all-reduce");
  if (move) tensor.copy_(t[0]);
}

void C10dComm::Broadcast(at::Tensor& tensor, int root) {
  const bool move = NeedsDevice(impl_->backend, tensor);
  std::vector<at::Tensor> t = {move ? tensor.to(at::kCUDA) : tensor};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  impl_->Wait(impl_->pg->broadcast(t, o), "broadcast");
  if (move) tensor.copy_(t[0]);
}

at::Tensor C10dComm::AllGather(const at::Tensor& tensor) {
  const bool move = NeedsDevice(impl_->backend, tensor);
  std::vector<at::Tensor> in = {move ? tensor.to(at::kCUDA) : tensor.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < size_; ++r) out[0].push_back(at::empty_like(in[0]));
  impl_->Wait(impl_->pg->allgather(out, in), "all-gather");
  at::Tensor stacked = at::stack(out[0], 0);
  return move ? stacked.to(at::kCPU) : stacked;
}

void C10dComm::Barrier() {
  // A barrier as a one-element all-reduce: Gloo's barrier ignores the work timeout in 1.13.
  at::Tensor t = at::zeros({1}, at::kFloat);
  AllReduceSum(t);
}

}  // namespace moebench
