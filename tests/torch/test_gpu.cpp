// GPU checks, skipped where no CUDA device is visible (CPU builds, CI): every method's MoE
// layer on the GPU routes as on the CPU and gives the same output and gradients; and, on CUDA
// builds, PyTorch's sync debug mode (set to raise an error) finds no wait for the device inside
// the switch and gshard layers' forward and backward other than the counted HostReads (Note
// [Host synchronisation] in harness/moe/moe_layer.cpp).
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/autocast.h"
#include "harness/comm/c10d_comm.h"
#include "harness/comm/local_comm.h"
#include "harness/host_read.h"
#include "harness/moe/experts.h"
#include "harness/moe/moe_layer.h"
#include "harness/torch_compat.h"
#include "harness/train/step_graphs.h"
#include "harness/train/training.h"
#include "methods/method.h"
#include "tests/torch/test_util.h"

#ifdef MOEBENCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace moebench {
namespace {

using testing::MakeMethodLayer;
using testing::PaddedBatch;

using Knobs = std::map<std::string, std::string>;

const std::vector<std::string> kMethods = {
    "switch", "gshard", "expert_choice", "thor", "smoe_dropout", "gating_dropout", "uniform"};

bool HaveGpu() { return at::hasCUDA(); }

// Switch's jitter (also gating dropout's, on its switch base) is drawn on the device with the
// device's own generator, so the comparison turns it off; the next test covers it.
Knobs NoJitter(const std::string& method) {
  if (method == "switch" || method == "gating_dropout") return {{"jitter", "0"}};
  return {};
}

// The parameter gradients of a CPU layer and its copy on the GPU agree.
void ExpectSameGrads(const MoeLayer& cpu, const MoeLayer& cuda) {
  const auto pg = cuda->named_parameters();
  for (const auto& p : cpu->named_parameters()) {
    if (!p.value().grad().defined()) continue;
    EXPECT_TRUE(at::allclose(p.value().grad(), pg[p.key()].grad().cpu(), 1e-4, 1e-5)) << p.key();
  }
}

// The same input on the CPU and on the GPU, both requiring grad.
std::pair<at::Tensor, at::Tensor> CpuAndGpuInput(const PaddedBatch& batch, const at::Device& gpu) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({batch.t, 8}).requires_grad_(true);
  return {x, x.detach().to(gpu).requires_grad_(true)};
}

TEST(Gpu, EveryMethodsLayerMatchesTheCpuLayer) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const at::Device gpu(at::kCUDA, 0);
  PaddedBatch batch;
  for (const std::string& method : kMethods) {
    for (int workers : {1, 2}) {
      SCOPED_TRACE(method + " workers " + std::to_string(workers));
      LocalComm comm(Topology{workers, 1});
      MoeLayer cpu = MakeMethodLayer(method, &comm, NoJitter(method));
      MoeLayer cuda = MakeMethodLayer(method, &comm, NoJitter(method));
      cuda->to(gpu);
      const auto [x, xg] = CpuAndGpuInput(batch, gpu);
      const RouteContext ctx = batch.Context(true);
      const at::Tensor y = cpu->forward(x, batch.pad, ctx);
      const at::Tensor yg = cuda->forward(xg, batch.pad.to(gpu), ctx);
      ASSERT_TRUE(yg.is_cuda());
      // Same routing: random draws come from the seeded CPU generators on every device.
      const LayerAssignments& a = cpu->last_assignments();
      const LayerAssignments& ag = cuda->last_assignments();
      EXPECT_TRUE(at::equal(a.token, ag.token.cpu()));
      EXPECT_TRUE(at::equal(a.expert, ag.expert.cpu()));
      EXPECT_TRUE(at::equal(a.slot, ag.slot.cpu()));
      EXPECT_EQ(a.capacity, ag.capacity);
      EXPECT_TRUE(at::allclose(y, yg.cpu(), 1e-4, 1e-5))
          << (y - yg.cpu()).abs().max().item<double>();
      (y.sum() + cpu->aux_loss()).backward();
      (yg.sum() + cuda->aux_loss()).backward();
      EXPECT_TRUE(at::allclose(x.grad(), xg.grad().cpu(), 1e-4, 1e-5));
      ExpectSameGrads(cpu, cuda);
      const MoeLayerStats& s = cpu->last_stats();
      const MoeLayerStats& sg = cuda->last_stats();
      EXPECT_EQ(s.real_tokens, sg.real_tokens);
      EXPECT_EQ(s.choices, sg.choices);
      EXPECT_EQ(s.dropped, sg.dropped);
      EXPECT_NEAR(s.entropy, sg.entropy, 1e-5);
    }
  }
}

// Jitter on the device: the same seed and step give the same noise, another step other noise.
TEST(Gpu, SwitchJitterOnTheDeviceDependsOnTheSeedAlone) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const at::Device gpu(at::kCUDA, 0);
  PaddedBatch batch;
  LocalComm comm(Topology{1, 1});
  MoeLayer a = MakeMethodLayer("switch", &comm, {{"jitter", "0.5"}});
  MoeLayer b = MakeMethodLayer("switch", &comm, {{"jitter", "0.5"}});
  MoeLayer none = MakeMethodLayer("switch", &comm, {{"jitter", "0"}});
  a->to(gpu);
  b->to(gpu);
  none->to(gpu);
  at::manual_seed(2);
  const at::Tensor x = at::randn({batch.t, 8}).to(gpu);
  const at::Tensor pad = batch.pad.to(gpu);
  RouteContext ctx = batch.Context(true);
  const at::Tensor ya = a->forward(x, pad, ctx);
  (void)at::randn({100}, gpu);  // the global generators do not matter
  const at::Tensor yb = b->forward(x, pad, ctx);
  EXPECT_TRUE(at::equal(ya, yb));
  EXPECT_FALSE(at::equal(ya, none->forward(x, pad, ctx)));  // the noise changes the gates
  ctx.step = 2;
  EXPECT_FALSE(at::equal(ya, a->forward(x, pad, ctx)));
}

#ifdef MOEBENCH_CUDA
// Sets PyTorch's sync debug mode while in scope.
class SyncDebug {
 public:
  explicit SyncDebug(c10::cuda::SyncDebugMode mode)
      : was_(c10::cuda::warning_state().get_sync_debug_mode()) {
    c10::cuda::warning_state().set_sync_debug_mode(mode);
  }
  ~SyncDebug() { c10::cuda::warning_state().set_sync_debug_mode(was_); }

 private:
  c10::cuda::SyncDebugMode was_;
};

TEST(Gpu, TheSyncCheckCatchesAnItemButNotAHostRead) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor t = at::ones({3}, at::Device(at::kCUDA, 0));
  SyncDebug on(c10::cuda::SyncDebugMode::L_ERROR);
  EXPECT_ANY_THROW((void)t.sum().item<float>());
  EXPECT_NO_THROW((void)HostRead(t.sum()));
}

// Inside the layer nothing but its HostReads waits for the device, for the routers that the
// Note says so of. The other methods' first wait, if any, is printed (known: expert choice's
// nonzero over padding picks, gating dropout's slot.max without a base capacity).
TEST(Gpu, SwitchAndGshardLayersWaitOnlyInTheirHostReads) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const at::Device gpu(at::kCUDA, 0);
  PaddedBatch batch;
  const at::Tensor pad = batch.pad.to(gpu);
  for (const std::string& method : kMethods) {
    for (int workers : {1, 2}) {
      SCOPED_TRACE(method + " workers " + std::to_string(workers));
      LocalComm comm(Topology{workers, 1});
      MoeLayer layer = MakeMethodLayer(method, &comm);
      layer->to(gpu);
      at::manual_seed(2);
      const at::Tensor x = at::randn({batch.t, 8}).to(gpu).requires_grad_(true);
      const RouteContext ctx = batch.Context(true);
      std::string error;
      {
        SyncDebug on(c10::cuda::SyncDebugMode::L_ERROR);
        try {
          at::Tensor y = layer->forward(x, pad, ctx);
          (y.sum() + layer->aux_loss()).backward();
        } catch (const std::exception& e) {
          error = e.what();
          error = error.substr(0, error.find('\n'));
        }
      }
      std::cout << "[sync] " << method << " workers " << workers << ": "
                << (error.empty() ? "no wait outside HostRead" : error) << "\n";
      if (method == "switch" || method == "gshard") {
        EXPECT_EQ(error, "");
      }
    }
  }
}
#endif

// The static-shape path on the GPU (Note [Static-shape path]): the same output and gradients as
// the dynamic layer on the CPU, and, on CUDA builds with the sync debug mode set to raise an
// error, no wait for the device in forward + backward, counted or not.
TEST(Gpu, TheStaticLayerMatchesTheCpuAndWaitsForNothing) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  const at::Device gpu(at::kCUDA, 0);
  PaddedBatch batch;
  for (const std::string method : {"switch", "gshard", "expert_choice", "gating_dropout"}) {
    for (int workers : {1, 2}) {
      SCOPED_TRACE(method + " workers " + std::to_string(workers));
      LocalComm comm(Topology{workers, 1});
      MoeLayer cpu = MakeMethodLayer(method, &comm, NoJitter(method));
      MoeLayer cuda = MakeMethodLayer(method, &comm, NoJitter(method), /*static_shapes=*/true);
      cuda->to(gpu);
      const auto [x, xg] = CpuAndGpuInput(batch, gpu);
      const RouteContext ctx = batch.Context(true);
      const at::Tensor y = cpu->forward(x, batch.pad, ctx);
      (y.sum() + cpu->aux_loss()).backward();
      const at::Tensor pad = batch.pad.to(gpu);
      const int64_t reads = HostReadCount();
      at::Tensor yg;
      {
#ifdef MOEBENCH_CUDA
        SyncDebug on(c10::cuda::SyncDebugMode::L_ERROR);
#endif
        yg = cuda->forward(xg, pad, ctx);
        (yg.sum() + cuda->aux_loss()).backward();
      }
      EXPECT_EQ(HostReadCount(), reads);
      EXPECT_TRUE(at::allclose(y, yg.cpu(), 1e-4, 1e-5));
      EXPECT_TRUE(at::allclose(x.grad(), xg.grad().cpu(), 1e-4, 1e-5));
      ExpectSameGrads(cpu, cuda);
      EXPECT_EQ(cpu->last_stats().tokens_per_expert, cuda->last_stats().tokens_per_expert);
      EXPECT_EQ(cpu->last_stats().dropped, cuda->last_stats().dropped);
      cuda->FlushDeviceTally();
      EXPECT_DOUBLE_EQ(cuda->expert_flops(), cpu->expert_flops());
    }
  }
}

// Issue 20's one-GPU fallback for NCCL expert parallelism: a process group of one NCCL rank
// runs the dynamic and the static layer on the GPU as one process runs it on the CPU (outputs,
// gradients, statistics), and the static path counts what the dynamic one counts on the rank.
// Not tested with one GPU: NCCL between GPUs (several ranks need several devices).
TEST(Gpu, OneNcclRankMatchesOneProcess) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  if (!C10dHasNccl()) GTEST_SKIP() << "this build has no NCCL";
  for (const std::string method : {"switch", "gshard"}) {
    testing::ExpectOneRankMatchesOneProcess(method, at::Device(at::kCUDA, 0));
  }
}

// Note [Training step graphs]: steps replayed from CUDA graphs train as the same steps run
// eagerly (capture off, everything else alike): the same losses and gradient norms step by step,
// the same weights after them, the same metered calls and bytes. Two batches of different
// shapes alternate for 16 steps, so each shape warms up (3 eager steps), is captured (the 4th)
// and replayed (4 times), the two graphs sharing one memory pool. With dropout and switch's
// jitter on: both runs draw from the default CUDA generator, reseeded before each step, which a
// replay reads as the eager step does, so even the random numbers agree. `comm` makes each
// training's process group (null: one process playing spec.workers workers).
void ExpectGraphStepsTrainAsEager(RunSpec spec,
                                  const std::function<std::unique_ptr<Comm>()>& comm) {
  spec.max_steps = 100;
  spec.log_every = 100;
  spec.checkpoint_every = 100;
  spec.tokens_per_batch = 1024;
  spec.valid_sentences = 0;
  spec.moe_path = "static";
  spec.cuda_graph = "on";
  spec.device = "cuda";
  const at::Device gpu(at::kCUDA, 0);
  auto build = [&] {
    return BuildTraining(spec, gpu, 1, comm ? comm() : nullptr, RunEnv{}, std::nullopt);
  };
  std::unique_ptr<Training> te = build(), tg = build();
  at::manual_seed(9);  // the default generators, for both runs alike
  StepGraphs eager(*te, /*capture=*/false);
  StepGraphs graphs(*tg, /*capture=*/true);
  EpochBatches batches(te->data, spec);
  std::vector<Batch> two;
  std::vector<GraphShape> shapes;
  for (int64_t s = 1; s <= 200 && two.size() < 2; ++s) {
    Batch b = MakeBatch(batches.pool(), batches.ForStep(s), te->data.vocab);
    const GraphShape shape = GraphShapeFor(std::max(b.src.size(1), b.tgt_in.size(1)),
                                           spec.tokens_per_batch, 1, spec.workers);
    if (shapes.empty() || shapes[0] < shape || shape < shapes[0]) {
      two.push_back(std::move(b));
      shapes.push_back(shape);
    }
  }
  ASSERT_EQ(two.size(), 2u) << "no two batches of different shapes";
  for (int64_t step = 1; step <= 16; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const Batch& b = two[static_cast<size_t>(step % 2)];
    at::manual_seed(100 + step);
    const StepValues x = eager.Step(b, step);
    at::manual_seed(100 + step);
    const StepValues y = graphs.Step(b, step);
    EXPECT_NEAR(y.loss, x.loss, 1e-5 * x.loss);
    EXPECT_NEAR(y.grad_norm, x.grad_norm, 1e-4 * x.grad_norm);
    EXPECT_EQ(y.nonexpert_flops, x.nonexpert_flops);
  }
  EXPECT_EQ(graphs.counts().shapes, 2);
  EXPECT_EQ(graphs.counts().captures, 2);
  EXPECT_EQ(graphs.counts().replays, 8);
  EXPECT_EQ(eager.counts().replays, 0);
  EXPECT_EQ(eager.counts().eager, 16);
  const auto pe = te->model->named_parameters(), pg = tg->model->named_parameters();
  for (const auto& p : pe) {
    EXPECT_TRUE(at::allclose(p.value(), pg[p.key()], 1e-4, 1e-6)) << p.key();
  }
  const auto me = te->comm->meter().Drain(), mg = tg->comm->meter().Drain();
  ASSERT_EQ(me.size(), mg.size());
  for (const auto& [key, c] : me) {
    EXPECT_EQ(c.calls, mg.at(key).calls) << key.second;
    EXPECT_EQ(c.wire, mg.at(key).wire) << key.second;
  }
  // A replay counts its exchanges in the meter's totals too (CommMeter::Repeat).
  EXPECT_EQ(te->comm->meter().total().calls, tg->comm->meter().total().calls);
  EXPECT_EQ(te->comm->meter().total().wire, tg->comm->meter().total().wire);
}

// Note [Grouped GEMM experts] on the GPU: under bf16 autocast the experts through
// at::_grouped_mm compute what the per-expert GEMMs compute (bf16 GEMMs with fp32 accumulation,
// other kernels: equal to rounding), outputs and all five gradients, an expert without rows
// included, over uneven groups of up to 1301 rows (whose bias gradients sum that many terms:
// in fp32 on both paths); and bf16 rows on an H100 take that path (the schedule says so).
TEST(Gpu, GroupedMmExpertsMatchThePerExpertLoop) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  if (!compat::kHaveGroupedMm) {
    GTEST_SKIP() << "LibTorch " << compat::TorchVersion() << " has no at::_grouped_mm";
  }
  const at::Device gpu(at::kCUDA, 0);
  EXPECT_EQ(ExpertSchedule(gpu, at::kBFloat16), "grouped_mm");
  EXPECT_NE(ExpertSchedule(gpu, at::kFloat), "grouped_mm");
  at::manual_seed(13);
  Experts experts(4, 64, 256);
  experts.to(gpu);
  const std::vector<int64_t> counts = {517, 0, 1301, 37};
  const at::Tensor x = at::randn({1855, 64}, at::TensorOptions().device(gpu));
  const at::Tensor gy = at::randn({1855, 64}, at::TensorOptions().device(gpu));
  auto run = [&](bool library) {
    for (at::Tensor p : experts.parameters()) p.mutable_grad() = at::Tensor();
    const at::Tensor xr = x.clone().requires_grad_(true);
    at::Tensor y;
    {
      AutocastScope bf16(at::kCUDA, true);
      y = experts.ForwardGroupedMm(xr, counts, library);
    }
    y.backward(gy.to(y.scalar_type()));
    std::vector<at::Tensor> out = {y.detach().to(at::kFloat), xr.grad()};
    for (const at::Tensor& p : experts.parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const std::vector<at::Tensor> loop = run(false), grouped = run(true);
  const std::vector<std::string> names = {"y", "x", "w1", "b1", "w2", "b2"};
  ASSERT_EQ(loop.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const double rel = ((grouped[i] - loop[i]).norm() / loop[i].norm()).item<double>();
    // Summed in bf16, 1301 unit-normal terms would be off by several percent.
    EXPECT_LT(rel, 1e-2) << names[i];
  }
  EXPECT_EQ(grouped[2][1].abs().sum().item<float>(), 0.0f) << "empty expert got gradient";
}

// A graph step's padded micro-batches are made in pinned host memory on a GPU (asynchronous
// copies into the graph's inputs), with the same values as the pageable ones.
TEST(Gpu, GraphMicroBatchesArePinned) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  Batch b;
  b.src = at::randint(3, 9, {4, 5}, at::kLong);
  b.tgt_in = at::randint(3, 9, {4, 6}, at::kLong);
  b.tgt_out = at::randint(3, 9, {4, 6}, at::kLong);
  b.rows = {0, 1, 2, 3};
  b.ntokens = 24;
  const GraphShape shape{8, 6};
  const std::vector<Batch> pinned = GraphMicroBatches(b, shape, 1, 2, 0, /*pinned=*/true);
  const std::vector<Batch> plain = GraphMicroBatches(b, shape, 1, 2, 0);
  ASSERT_EQ(pinned.size(), 1u);
  for (const auto& [p, q] :
       {std::pair{pinned[0].src, plain[0].src}, std::pair{pinned[0].tgt_in, plain[0].tgt_in},
        std::pair{pinned[0].tgt_out, plain[0].tgt_out}}) {
    EXPECT_TRUE(p.is_pinned());
    EXPECT_FALSE(q.is_pinned());
    EXPECT_TRUE(at::equal(p, q));
  }
}

TEST(Gpu, GraphStepsTrainAsEagerSteps) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  for (const bool random : {false, true}) {
    SCOPED_TRACE(random ? "dropout and jitter" : "deterministic");
    RunSpec spec;
    spec.method = "switch";
    if (!random) spec.knobs = {{"jitter", "0"}};
    spec.dropout = random ? 0.1 : 0.0;
    spec.workers = 2;
    ExpectGraphStepsTrainAsEager(spec, nullptr);
  }
}

// The same on one NCCL rank: its captured steps hold its collectives (the exchanges, the
// gradient all-reduce, the norm's sum), replayed as eager steps run them. Not tested with one
// GPU: capture with NCCL between GPUs (several ranks need several devices).
TEST(Gpu, GraphStepsOnOneNcclRankTrainAsEagerSteps) {
  if (!HaveGpu()) GTEST_SKIP() << "no CUDA device";
  if (!C10dHasNccl()) GTEST_SKIP() << "this build has no NCCL";
  RunSpec spec;
  spec.method = "switch";
  spec.knobs = {{"jitter", "0"}};
  spec.dropout = 0.0;
  spec.workers = 1;
  ExpectGraphStepsTrainAsEager(spec, [] { return testing::OneRankComm(/*nccl=*/true); });
}

}  // namespace
}  // namespace moebench
