#include "harness/train/step_graphs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <utility>

#include "harness/error_text.h"
#include "harness/host_read.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/lr_schedule.h"
#include "harness/train/op_trace.h"

#ifdef MOEBENCH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace moebench {

// Note [Training step graphs]
// On a GPU a step of the static-shape path launches thousands of small kernels; the host's
// launch rate, not the device, sets its pace (docs/gpu.md). A CUDA graph replays a captured
// step's kernels in one launch, with the arguments they had at capture. So a replayed step must
// launch the same kernels with the same arguments as the captured one, whatever its batch:
//
// - shapes: the step's batch is cut into micro-batches as MicroBatches cuts it and padded to one
//   of a few shapes (GraphShapeFor: every sentence to its bucket's padded length, the rows to
//   the most sentences a batch of that bucket can hold, worker block by worker block, so each
//   worker's token group holds its own sentences); all-pad sentences attend finitely
//   (harness/model/attention.cpp) and are neither routed nor counted by the loss. One graph per
//   shape;
// - host scalars: the capacity routers keep their slots for the padded group and apply the real
//   capacity on the device (Note [Bounded capacity], methods/router.h), routing randomness draws
//   from the device's default generator (Note [Routing randomness]), the loss is divided by the
//   batch's token count as a tensor, and the update takes its learning rate and bias corrections
//   from device counters (Note [Replayable optimizer step]);
// - no host reads: on the static path a step reads nothing from the device; its values
//   (losses, gradient norm) are read after the replay, from tensors every replay writes.
//
// The first steps of a shape run eagerly: one to make what a step makes once (caches, state
// tensors), then two whose op traces (OpTrace: ops, shapes, scalar arguments, generator seeds)
// must be equal and free of host reads. A method whose step depends on more than its batch's
// shape fails there, naming the first op that differs (SMoE-Dropout's growing k, THOR's and
// gating dropout's seeded draws, BASE's host assignment), on the CPU as on a GPU. With capture
// on, the next step of the shape is captured (on a side stream, after a device sync) and
// replayed at once; later steps of the shape are replayed. Steps whose metric window closes
// run eagerly, with the MoE layers' routing statistics on, as TrainStep runs them.
//
// A graph does not run the host code of its step, so what that code counts is added per replay
// from what the capture counted: the meter's entries (calls and bytes, which on the static path
// depend on the shape alone; the measured milliseconds are the capture's) and ReplayableAdam's
// host step counts; the non-expert FLOPs are the captured step's forward passes over this
// step's sentences, each at its real lengths (Note [Compute model]). What the static path counts on
// the device (expert rows, logical bytes) accumulates in place in tensors made before capture and
// is read at window closes, as without graphs; the aux-loss-free router's expert counts likewise.
//
// All graphs share one memory pool (PyTorch calls that safe when graphs replay in capture
// order; here they replay in any order): every tensor a graph reads from one step to the next
// (weights, gradients, Adam's moments, tallies, static inputs and outputs, the capacity tables)
// is made by the eager warm-up steps, outside the pool. What a capture leaves the host holding
// in the pool (a layer's aux loss and pending statistics of the captured forward) is read by
// no later step: the objective reads the aux loss within the step, and a step that reads
// statistics runs eagerly and replaces them first.
//
// On a process group (one rank per worker) the shape is the whole batch's, the same on every
// rank: its longest side, rows for every worker block; each rank pads its own share (its block)
// to its part of the rows, and its static-path layers size the other ranks' exchange buffers
// from their padded shares (GraphRankShares), so every buffer's shape is the step's shape's.
// Every rank then warms up, captures and replays at the same steps. A rank's captured step
// holds its collectives (the exchanges, the gradient all-reduce, the norm's sum), which
// ProcessGroupNCCL lets a CUDA graph capture once its communicator exists (the eager warm-up
// made it); every rank replays them in the order the eager steps ran them.
//
// On the CPU (capture off) every step runs eagerly after the same checked warm-up: the padded
// shapes, the step's ops and its bookkeeping are those a GPU run captures, which the CPU tests
// and tests/e2e check; GPU tests compare replay with eager (tests/torch/test_gpu.cpp).

namespace {

// The rounding of a longest side of `n` tokens: the smallest power of two q with 8 q >= n.
int64_t LengthQuantum(int64_t n) {
  int64_t q = 1;
  while (8 * q < n) q *= 2;
  return q;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

int64_t GraphLength(int64_t longest) {
  longest = std::max<int64_t>(longest, 1);
  const int64_t q = LengthQuantum(longest);
  return CeilDiv(longest, q) * q;
}

GraphShape GraphShapeFor(int64_t longest, int64_t tokens_per_batch, int64_t micro_batches,
                         int blocks) {
  GraphShape s;
  s.length = GraphLength(longest);
  // Batches of this length have their longest side in (below, length].
  const int64_t below = s.length - LengthQuantum(s.length);
  const int64_t sentences = std::max<int64_t>(1, tokens_per_batch / (below + 1));
  s.rows = blocks * CeilDiv(CeilDiv(sentences, blocks), std::max<int64_t>(micro_batches, 1));
  return s;
}

std::vector<Batch> GraphMicroBatches(const Batch& batch, const GraphShape& shape,
                                     int64_t micro_batches, int blocks, int64_t pad_id,
                                     bool pinned) {
  const int64_t b = batch.src.size(0), s = batch.src.size(1), l = batch.tgt_in.size(1);
  if (s > shape.length || l > shape.length) {
    throw std::logic_error("graph step: a " + std::to_string(s) + " x " + std::to_string(l) +
                           " batch does not fit padded length " + std::to_string(shape.length));
  }
  const int64_t per_block = shape.rows / blocks;
  const auto rows = MicroBatchBlockRows(b, micro_batches, blocks);
  std::vector<Batch> out;
  for (const std::vector<std::vector<int64_t>>& by_block : rows) {
    std::vector<int64_t> to, from;
    for (int w = 0; w < blocks; ++w) {
      const std::vector<int64_t>& r = by_block[static_cast<size_t>(w)];
      if (static_cast<int64_t>(r.size()) > per_block) {
        throw std::runtime_error("graph step: worker block " + std::to_string(w) + " has " +
                                 std::to_string(r.size()) + " sentences for " +
                                 std::to_string(per_block) +
                                 " rows (a batch over the token budget of its padded length " +
                                 std::to_string(shape.length) + ")");
      }
      for (size_t j = 0; j < r.size(); ++j) {
        to.push_back(w * per_block + static_cast<int64_t>(j));
        from.push_back(r[j]);
      }
    }
    const at::Tensor to_t = at::tensor(to, at::kLong), from_t = at::tensor(from, at::kLong);
    Batch m;
    auto padded = [&](const at::Tensor& x) {
      at::Tensor p = at::full({shape.rows, shape.length}, pad_id,
                              at::TensorOptions().dtype(at::kLong).pinned_memory(pinned));
      p.narrow(1, 0, x.size(1)).index_copy_(0, to_t, x.index_select(0, from_t));
      return p;
    };
    m.src = padded(batch.src);
    m.tgt_in = padded(batch.tgt_in);
    m.tgt_out = padded(batch.tgt_out);
    // Lengths only when the batch has them (without, the model counts the padded shape).
    const bool lengths = !batch.src_lengths.empty();
    if (lengths) {
      m.src_lengths.assign(static_cast<size_t>(shape.rows), 0);
      m.tgt_lengths.assign(static_cast<size_t>(shape.rows), 0);
    }
    for (size_t k = 0; k < to.size(); ++k) {
      m.rows.push_back(batch.rows[static_cast<size_t>(from[k])]);
      if (lengths) {
        m.src_lengths[static_cast<size_t>(to[k])] = batch.src_lengths[static_cast<size_t>(from[k])];
        m.tgt_lengths[static_cast<size_t>(to[k])] = batch.tgt_lengths[static_cast<size_t>(from[k])];
      }
    }
    m.ntokens = batch.ntokens;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::vector<RankShare>> GraphRankShares(const Batch& batch, const GraphShape& whole,
                                                    int64_t micro_batches, int world) {
  if (batch.src_lengths.empty()) return {};
  const int64_t per_rank = whole.rows / world;
  const auto rows = MicroBatchBlockRows(batch.src.size(0), micro_batches, world);
  std::vector<std::vector<RankShare>> out;
  for (const std::vector<std::vector<int64_t>>& by_rank : rows) {
    std::vector<RankShare>& shares = out.emplace_back();
    for (const std::vector<int64_t>& r : by_rank) {
      RankShare& s = shares.emplace_back();
      for (int64_t i : r) {
        s.src_lengths.push_back(batch.src_lengths[static_cast<size_t>(i)]);
        s.tgt_lengths.push_back(batch.tgt_lengths[static_cast<size_t>(i)]);
      }
      s.src_lengths.resize(static_cast<size_t>(per_rank), 0);
      s.tgt_lengths.resize(static_cast<size_t>(per_rank), 0);
      s.src_len = s.tgt_len = whole.length;
    }
  }
  return out;
}

struct StepGraphs::Graph {
  std::vector<Batch> inputs;       // on the device: what each step's micro-batches are copied into
  StepTensors out;                 // what every run of the step writes its values to
  int64_t runs = 0;                // eager steps without statistics (the warm-up)
  std::vector<std::string> trace;  // the last traced warm-up step's ops
  int64_t trace_step = 0;          // and its step
  bool captured = false;
  // What the captured step's host code counted, added per replay.
  std::map<std::pair<int, std::string>, CommCounters> meter;
  double passes = 0;  // the captured step's forward passes over its sentences (THOR's: 2)
  std::vector<int64_t> updated;  // the parameters its update updates (ReplayableAdam)
#ifdef MOEBENCH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

struct StepGraphs::Cuda {
#ifdef MOEBENCH_CUDA
  explicit Cuda(const at::Device& device)
      : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index())),
        pool(at::cuda::graph_pool_handle()) {}
  c10::cuda::CUDAStream stream;  // where graph steps run, eager ones included
  c10::cuda::MempoolId_t pool;   // shared by every graph
#endif
};

namespace {

// Warm-up steps per shape: one untraced (it makes the step's once-made tensors), then two
// whose traces must agree.
constexpr int64_t kUntracedRuns = 1;
constexpr int64_t kTracedRuns = 2;

// On a CUDA device: PyTorch's sync debug mode set to raise an error at every wait for the
// device, on every thread (HostRead exempts itself; the trace check counts those), for a scope.
class NoDeviceWaits {
 public:
  explicit NoDeviceWaits(const at::Device& device) {
#ifdef MOEBENCH_CUDA
    if (device.is_cuda()) {
      on_ = true;
      before_ = c10::cuda::warning_state().get_sync_debug_mode();
      c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
    }
#else
    (void)device;
#endif
  }
  ~NoDeviceWaits() {
#ifdef MOEBENCH_CUDA
    if (on_) c10::cuda::warning_state().set_sync_debug_mode(before_);
#endif
  }
  NoDeviceWaits(const NoDeviceWaits&) = delete;
  NoDeviceWaits& operator=(const NoDeviceWaits&) = delete;

 private:
#ifdef MOEBENCH_CUDA
  bool on_ = false;
  c10::cuda::SyncDebugMode before_ = c10::cuda::SyncDebugMode::L_DISABLED;
#endif
};

// The non-expert forward FLOPs of one pass over `batch` as TrainStep counts them: each
// sentence at its real length (Note [Compute model]), however it is cut into micro-batches.
double UsefulFlops(const Transformer& model, const Batch& batch) {
  if (batch.src_lengths.empty()) {
    return model->NonexpertForwardFlops(batch.src.size(0), batch.src.size(1), batch.tgt_in.size(1));
  }
  return model->NonexpertForwardFlops(batch.src_lengths, batch.tgt_lengths);
}

}  // namespace

std::string GraphRankEnvProblem() {
  // As PyTorch reads them: the first name set decides; y, yes, t, true or 1 in any case is on.
  for (const char* name : {"TORCH_NCCL_BLOCKING_WAIT", "NCCL_BLOCKING_WAIT"}) {
    const char* v = std::getenv(name);
    if (v == nullptr) continue;
    const std::string value(v);
    std::string lower = value;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower != "1" && lower != "y" && lower != "yes" && lower != "t" && lower != "true") {
      return "";
    }
    return std::string("cuda_graph: ") + name + "=" + value +
           " makes every wait for an NCCL collective poll its CUDA event from the host, which a "
           "captured step cannot do: unset it, or run with cuda_graph off";
  }
  return "";
}

StepGraphs::StepGraphs(Training& t, bool capture) : t_(t), capture_(capture) {
  if (capture_) {
#ifdef MOEBENCH_CUDA
    if (!t.device.is_cuda()) throw std::invalid_argument("cuda_graph: capture needs a CUDA device");
    if (!t.comm->plays_all_workers()) {
      const std::string problem = GraphRankEnvProblem();
      if (!problem.empty()) throw std::invalid_argument(problem);
    }
    cuda_ = std::make_unique<Cuda>(t.device);
#else
    throw std::invalid_argument("cuda_graph: this build has no CUDA (capture needs one)");
#endif
  }
  // Every gradient exists from the start and is only ever zeroed in place: a captured step
  // writes into the tensors it had at capture.
  at::NoGradGuard no_grad;
  for (const std::vector<at::Tensor>* ps : {&t.split.dense, &t.split.expert}) {
    for (const at::Tensor& p : *ps) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    }
  }
}

StepGraphs::~StepGraphs() = default;

StepGraphs::Graph& StepGraphs::GraphOf(const GraphShape& shape) {
  std::unique_ptr<Graph>& g = graphs_[shape];
  if (g) return *g;
  g = std::make_unique<Graph>();
  ++counts_.shapes;
  const at::TensorOptions opt = at::TensorOptions().dtype(at::kLong).device(t_.device);
  for (int64_t i = 0; i < t_.spec.grad_accum; ++i) {
    Batch m;
    m.src = at::zeros({shape.rows, shape.length}, opt);
    m.tgt_in = at::zeros({shape.rows, shape.length}, opt);
    m.tgt_out = at::zeros({shape.rows, shape.length}, opt);
    m.ntokens_tensor = at::zeros({}, opt.dtype(at::kDouble));
    g->inputs.push_back(std::move(m));
  }
  g->out = StepTensors::Zeros(t_.device);
  return *g;
}

void StepGraphs::RunEager(Graph& g, int64_t step, bool statistics, StepValues& v) {
  StepOptions opt;
  opt.statistics = statistics;
  opt.graph = true;
  opt.rank_shares = &shares_;
  StepOps(t_, g.inputs, step, opt, g.out, v);
  ++counts_.eager;
}

// Note [Warm-up verdicts on ranks]: each rank checks its own traced warm-up step, and a check
// can fail on one rank only (its share's host read, its trace). Were that rank to stop alone,
// the others would go on to capture and wait in their next collective until the group's
// timeout (comm_timeout) ended the run. So after the step (whose collectives every rank ran)
// the ranks sum one flag per rank, and all stop together: the failing rank with its reason,
// the others naming the ranks that failed. This covers the checks made after the step (host
// reads counted, `item` in the trace, traces that differ). An error raised inside the step
// (on a GPU, sync debug mode's error at a device wait) stops its rank mid-step, before
// collectives the others then wait in until the timeout, as any failure inside a step does.
std::string StepGraphs::RanksAgree(const std::string& failure) const {
  Comm& comm = *t_.comm;
  if (comm.plays_all_workers() || comm.size() < 2) return failure;
  at::Tensor failed = at::zeros({comm.size()}, at::TensorOptions().dtype(at::kFloat));
  failed[comm.rank()] = failure.empty() ? 0.0 : 1.0;
  comm.AllReduceSum(failed);
  if (!failure.empty()) return failure;
  std::string ranks;
  const at::Tensor f = failed.cpu();
  for (int r = 0; r < comm.size(); ++r) {
    if (f[r].item<float>() > 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  }
  if (ranks.empty()) return "";
  return "cuda_graph: method " + t_.spec.method + ": the warm-up check failed on rank " + ranks +
         " (its log says why); rank " + std::to_string(comm.rank()) + " stops with it";
}

void StepGraphs::Warm(Graph& g, const GraphShape& shape, int64_t step, StepValues& v) {
  if (g.runs < kUntracedRuns) {
    RunEager(g, step, false, v);
    ++g.runs;
    return;
  }
  const std::string where = "cuda_graph: method " + t_.spec.method + ", a step of " +
                            std::to_string(shape.rows) + " x " + std::to_string(shape.length) +
                            " tokens per micro-batch";
  const int64_t reads = HostReadCount();
  std::vector<std::string> trace;
  try {
    const NoDeviceWaits no_waits(t_.device);
    trace = OpTrace([&] { RunEager(g, step, false, v); });
  } catch (const c10::Error& e) {
    const std::string text = ErrorText(e);
    if (text.find("synchronizing") != std::string::npos) {  // the sync debug mode's
      throw std::runtime_error(where + " waits for the device (a captured step cannot): " + text);
    }
    throw std::runtime_error(where + " failed in its warm-up: " + text);
  }
  std::string failure;
  if (HostReadCount() != reads) {
    failure = where + " reads the device " + std::to_string(HostReadCount() - reads) +
              " times (a captured step cannot)";
  }
  for (const std::string& op : trace) {
    if (failure.empty() &&
        (op.rfind("aten::item(", 0) == 0 || op.rfind("aten::_local_scalar_dense(", 0) == 0)) {
      failure = where + " reads a value on the host: " + op;
    }
  }
  if (failure.empty() && g.runs > kUntracedRuns) {
    const std::string diff = TraceDifferences(g.trace, trace, 3);
    if (!diff.empty()) {
      failure = where + " is not the same at steps " + std::to_string(g.trace_step) + " and " +
                std::to_string(step) + " (a graph would replay the first): " + diff;
    }
  }
  failure = RanksAgree(failure);
  if (!failure.empty()) throw std::runtime_error(failure);
  g.trace = std::move(trace);
  g.trace_step = step;
  ++g.runs;
}

void StepGraphs::Capture(Graph& g, int64_t step, StepValues& v) {
#ifdef MOEBENCH_CUDA
  // The update must count on the device (not set its counter: a graph would bake the step in).
  if (t_.update->step() != step - 1) {
    throw std::logic_error("cuda_graph: capture at step " + std::to_string(step) +
                           " after an update of step " + std::to_string(t_.update->step()));
  }
  c10::cuda::device_synchronize();
  // The eager steps' cached blocks go back to the device: a capture allocates in the graphs'
  // own pool and, while it runs, the allocator frees no cached block to make room (as
  // torch.cuda.graph empties the cache before capturing).
  c10::cuda::CUDACachingAllocator::emptyCache();
  CommMeter& meter = t_.comm->meter();
  const auto before = meter.Drain();
  g.graph = std::make_unique<at::cuda::CUDAGraph>();
  StepOptions opt;
  opt.graph = true;
  opt.rank_shares = &shares_;
  g.graph->capture_begin(cuda_->pool);
  bool stepped = false;
  try {
    StepOps(t_, g.inputs, step, opt, g.out, v);
    stepped = true;
    g.graph->capture_end();
  } catch (const std::exception& e) {
    std::string ending;
    try {
      // Ends the stream's capture, whatever it holds (capture_end's own failure ended it).
      if (!stepped) g.graph->capture_end();
      g.graph.reset();
    } catch (const std::exception& end_error) {
      // An invalidated capture fails in capture_end before the caching allocator stops routing
      // the stream's allocations to the graph's pool through a filter that points at the graph:
      // the graph is left alive (leaked), so that no later allocation reads a freed object.
      ending = "; ending the capture: " + ErrorText(end_error);
      (void)g.graph.release();
    }
    // Out of memory stays itself: the trainer adds what to change (OutOfMemoryAdvice).
    if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) throw;
    throw std::runtime_error("cuda_graph: method " + t_.spec.method + ", capturing step " +
                             std::to_string(step) + ": " + ErrorText(e) + ending);
  }
  g.updated = t_.update->last_update();
  g.meter = meter.Drain();
  meter.Restore(before);
  meter.Restore(g.meter);  // this step's, counted by the capture
  g.captured = true;
  g.trace.clear();
  g.graph->replay();  // the capture ran nothing: this is step `step`
  ++counts_.captures;
#else
  (void)g;
  (void)step;
  (void)v;
  throw std::logic_error("cuda_graph: capture in a build without CUDA");
#endif
}

void StepGraphs::Replay(Graph& g, int64_t step, StepValues& v) {
#ifdef MOEBENCH_CUDA
  t_.update->Replayed(step, g.updated);
  g.graph->replay();
  t_.comm->meter().Repeat(g.meter);
  v.lr = InverseSqrtLr(t_.spec.lr, step, t_.spec.warmup);
  // The layers' expert FLOPs of the static path arrive with their device tallies at the window
  // close (MetricWindow), as for eager steps.
  v.layer_expert_flops.assign(t_.model->MoeLayers().size(), 0.0);
  ++counts_.replays;
#else
  (void)g;
  (void)step;
  (void)v;
  throw std::logic_error("cuda_graph: replay in a build without CUDA");
#endif
}

StepValues StepGraphs::Step(const Batch& batch, int64_t step) {
  // The shape of the whole batch, the same on every rank: its worker blocks padded alike.
  const int workers = t_.comm->topology().workers;
  const int64_t longest = std::max(batch.src.size(1), batch.tgt_in.size(1));
  GraphShape whole = GraphShapeFor(longest, t_.spec.tokens_per_batch, t_.spec.grad_accum, workers);
  // Never past the model's positions (a batch longer than them fails in the model, as usual).
  whole.length = std::max(longest, std::min(whole.length, t_.model->config().max_positions));
  // This process's: every block for one process playing the workers, its own block on a rank
  // (its share is RankSlice's, the rows of block `rank` as MicroBatchBlockRows cuts them).
  const bool ranks = !t_.comm->plays_all_workers();
  const int blocks = ranks ? 1 : workers;
  GraphShape shape = whole;
  if (ranks) {
    shape.rows = whole.rows / workers;
    shares_ = GraphRankShares(batch, whole, t_.spec.grad_accum, workers);
  }
  const Batch share = ThisProcessShare(batch, *t_.comm);
  // On a GPU the padded micro-batches are made in pinned host memory, so that their copies
  // into the graph's inputs are asynchronous (from pageable memory CUDA copies through its own
  // staging buffer, and the host waits); the caching host allocator keeps each pinned block
  // until the copy from it has run (it records the copy's stream), so the next step's batch
  // never overwrites one in flight.
  const std::vector<Batch> micro = GraphMicroBatches(share, shape, t_.spec.grad_accum, blocks,
                                                     t_.model->pad_id(), t_.device.is_cuda());
#ifdef MOEBENCH_CUDA
  std::optional<c10::cuda::CUDAStreamGuard> on_side;
  if (cuda_) {
    // The side stream waits for what the default stream queued (the weights' first copy).
    at::cuda::CUDAEvent ready;
    ready.record(c10::cuda::getDefaultCUDAStream(t_.device.index()));
    ready.block(cuda_->stream);
    on_side.emplace(cuda_->stream);
  }
#endif
  Graph& g = GraphOf(shape);
  for (size_t i = 0; i < micro.size(); ++i) {
    Batch& in = g.inputs[i];
    in.src.copy_(micro[i].src, /*non_blocking=*/true);
    in.tgt_in.copy_(micro[i].tgt_in, /*non_blocking=*/true);
    in.tgt_out.copy_(micro[i].tgt_out, /*non_blocking=*/true);
    in.ntokens_tensor.fill_(static_cast<double>(micro[i].ntokens));  // not in a graph
    in.ntokens = micro[i].ntokens;
    in.rows = micro[i].rows;
    in.src_lengths = micro[i].src_lengths;  // host values the step's ops do not depend on
    in.tgt_lengths = micro[i].tgt_lengths;
  }
  StepValues v;
  if (WindowClosesAt(t_.spec, step)) {
    RunEager(g, step, /*statistics=*/true, v);
  } else if (g.captured) {
    Replay(g, step, v);
    // A replay runs no host code: the captured step's passes over this step's sentences.
    v.nonexpert_flops = g.passes * UsefulFlops(t_.model, share);
  } else if (g.runs < kUntracedRuns + kTracedRuns) {
    Warm(g, shape, step, v);
  } else if (capture_) {
    Capture(g, step, v);
    const double one_pass = UsefulFlops(t_.model, share);
    g.passes = one_pass > 0 ? std::round(v.nonexpert_flops / one_pass) : 0;
  } else {
    RunEager(g, step, false, v);
  }
  // Eager and captured steps counted their forwards' FLOPs at the inputs' real lengths: the
  // share's sentences (all-pad rows add nothing), as TrainStep counts them.
  UpdateRouters(t_, step);
  ReadStepValues(g.out, step, v);
  v.tokens = batch.ntokens;
  return v;
}

}  // namespace moebench
