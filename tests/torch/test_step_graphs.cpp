// Note [Training step graphs] (harness/train/step_graphs.cpp) on the CPU: the padded shapes by
// hand, the padded micro-batches by hand, graph steps (run eagerly here) against TrainStep on
// the same batches, and the warm-up check refusing a step that is not the same from step to
// step. Replay against eager is a GPU test (tests/torch/test_gpu.cpp).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness/comm/c10d_comm.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/step_graphs.h"
#include "harness/train/training.h"
#include "methods/method.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

TEST(StepGraphs, PaddedLengthsByHand) {
  // Multiples of 1 up to 8, of 2 up to 16, of 4 up to 32, of 8 up to 64, of 16 up to 128...
  const std::vector<std::pair<int64_t, int64_t>> cases = {
      {0, 1},   {1, 1},   {7, 7},   {8, 8},   {9, 10},    {16, 16},  {17, 20},
      {30, 32}, {33, 40}, {64, 64}, {65, 80}, {129, 160}, {200, 224}};
  for (const auto& [longest, padded] : cases) {
    EXPECT_EQ(GraphLength(longest), padded) << "longest " << longest;
  }
}

// PyTorch's blocking NCCL wait, as a user sets it (either name), is refused for captured steps
// on ranks with what to do; unset, 0, or another variable, it is not.
TEST(StepGraphs, TheBlockingNcclWaitIsRefusedForCapturedRankSteps) {
  unsetenv("TORCH_NCCL_BLOCKING_WAIT");
  unsetenv("NCCL_BLOCKING_WAIT");
  EXPECT_EQ(GraphRankEnvProblem(), "");
  setenv("TORCH_NCCL_BLOCKING_WAIT", "0", 1);
  EXPECT_EQ(GraphRankEnvProblem(), "");
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 1);
  const std::string problem = GraphRankEnvProblem();
  EXPECT_NE(problem.find("TORCH_NCCL_BLOCKING_WAIT=1"), std::string::npos) << problem;
  EXPECT_NE(problem.find("unset it, or run with cuda_graph off"), std::string::npos) << problem;
  unsetenv("TORCH_NCCL_BLOCKING_WAIT");
  setenv("NCCL_BLOCKING_WAIT", "1", 1);
  EXPECT_NE(GraphRankEnvProblem().find("NCCL_BLOCKING_WAIT=1"), std::string::npos);
  // PyTorch's spellings of on, and the first name set decides.
  setenv("NCCL_BLOCKING_WAIT", "Yes", 1);
  EXPECT_NE(GraphRankEnvProblem().find("NCCL_BLOCKING_WAIT=Yes"), std::string::npos);
  setenv("TORCH_NCCL_BLOCKING_WAIT", "0", 1);
  EXPECT_EQ(GraphRankEnvProblem(), "");
  setenv("TORCH_NCCL_BLOCKING_WAIT", "t", 1);
  EXPECT_NE(GraphRankEnvProblem().find("TORCH_NCCL_BLOCKING_WAIT=t"), std::string::npos);
  unsetenv("TORCH_NCCL_BLOCKING_WAIT");
  unsetenv("NCCL_BLOCKING_WAIT");
  EXPECT_EQ(GraphRankEnvProblem(), "");
}

TEST(StepGraphs, ShapesByHand) {
  // Longest side 30 pads to 32; below 32 comes 28, so a batch of this shape has sentences of
  // 29 or more tokens: at most 2048 / 29 = 70 of them.
  GraphShape s = GraphShapeFor(30, 2048, 1, 1);
  EXPECT_EQ(s.length, 32);
  EXPECT_EQ(s.rows, 70);
  // 2 worker blocks of ceil(70 / 2) = 35, in 2 micro-batches: ceil(35 / 2) = 18 rows per block.
  s = GraphShapeFor(30, 2048, 2, 2);
  EXPECT_EQ(s.rows, 36);
  // One sentence longer than the budget is a batch of its own: one row.
  s = GraphShapeFor(300, 128, 1, 1);
  EXPECT_EQ(s.length, 320);
  EXPECT_EQ(s.rows, 1);
}

// 5 sentences in 2 worker blocks (rows 0-1 and 2-4, as MicroBatches cuts them), padded to 3
// rows per block and 6 tokens: block 1's sentences move to rows 3-5, row 2 is all pad.
TEST(StepGraphs, MicroBatchesPaddedByHand) {
  constexpr int64_t kPad = 0;
  Batch b;
  const std::vector<int64_t> src_len = {3, 2, 4, 1, 2}, tgt_len = {2, 3, 1, 4, 2};
  b.src = at::full({5, 4}, kPad, at::kLong);
  b.tgt_in = at::full({5, 4}, kPad, at::kLong);
  b.tgt_out = at::full({5, 4}, kPad, at::kLong);
  for (int64_t i = 0; i < 5; ++i) {
    b.src[i].narrow(0, 0, src_len[i]).fill_(10 + i);
    b.tgt_in[i].narrow(0, 0, tgt_len[i]).fill_(20 + i);
    b.tgt_out[i].narrow(0, 0, tgt_len[i]).fill_(30 + i);
  }
  b.src_lengths = src_len;
  b.tgt_lengths = tgt_len;
  b.rows = {100, 101, 102, 103, 104};
  b.ntokens = 12;
  const std::vector<Batch> m = GraphMicroBatches(b, GraphShape{6, 6}, 1, 2, kPad);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].src.sizes(), at::IntArrayRef({6, 6}));
  EXPECT_EQ(m[0].tgt_out.sizes(), at::IntArrayRef({6, 6}));
  const std::vector<int64_t> at_row = {0, 1, -1, 2, 3, 4};  // the sentence in each row
  for (int64_t r = 0; r < 6; ++r) {
    SCOPED_TRACE("row " + std::to_string(r));
    const int64_t i = at_row[r];
    at::Tensor want = at::full({6}, kPad, at::kLong);
    if (i >= 0) want.narrow(0, 0, src_len[i]).fill_(10 + i);
    EXPECT_TRUE(at::equal(m[0].src[r], want));
    EXPECT_EQ(m[0].src_lengths[r], i >= 0 ? src_len[i] : 0);
    EXPECT_EQ(m[0].tgt_lengths[r], i >= 0 ? tgt_len[i] : 0);
    EXPECT_EQ(m[0].tgt_out[r].ne(kPad).sum().item<int64_t>(), i >= 0 ? tgt_len[i] : 0);
  }
  EXPECT_EQ(m[0].rows, (std::vector<int64_t>{100, 101, 102, 103, 104}));
  EXPECT_EQ(m[0].ntokens, 12);
  // A block with more sentences than its rows: a batch over the shape's budget.
  EXPECT_THROW(GraphMicroBatches(b, GraphShape{6, 4}, 1, 2, kPad), std::runtime_error);
}

// The same 5 sentences on 2 ranks (rank 0 rows 0-1, rank 1 rows 2-4, as RankSlice cuts them):
// each rank's share of each micro-batch, padded to the whole shape's rows per rank and length.
TEST(StepGraphs, RankSharesPaddedByHand) {
  Batch b;
  b.src = at::zeros({5, 4}, at::kLong);
  b.tgt_in = b.tgt_out = b.src;
  b.src_lengths = {3, 2, 4, 1, 2};
  b.tgt_lengths = {2, 3, 1, 4, 2};
  using L = std::vector<int64_t>;
  // One micro-batch, 3 rows per rank: rank 0 has an all-pad row.
  auto s = GraphRankShares(b, GraphShape{6, 6}, 1, 2);
  ASSERT_EQ(s.size(), 1u);
  ASSERT_EQ(s[0].size(), 2u);
  EXPECT_EQ(s[0][0].src_lengths, (L{3, 2, 0}));
  EXPECT_EQ(s[0][0].tgt_lengths, (L{2, 3, 0}));
  EXPECT_EQ(s[0][1].src_lengths, (L{4, 1, 2}));
  EXPECT_EQ(s[0][1].tgt_lengths, (L{1, 4, 2}));
  for (const RankShare& r : s[0]) {
    EXPECT_EQ(r.src_len, 6);
    EXPECT_EQ(r.tgt_len, 6);
  }
  // Two micro-batches of 2 rows per rank: rank 0's sentences 0 | 1, rank 1's 2 | 3, 4.
  s = GraphRankShares(b, GraphShape{8, 4}, 2, 2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0][0].src_lengths, (L{3, 0}));
  EXPECT_EQ(s[0][1].src_lengths, (L{4, 0}));
  EXPECT_EQ(s[1][0].src_lengths, (L{2, 0}));
  EXPECT_EQ(s[1][1].src_lengths, (L{1, 2}));
  EXPECT_EQ(s[1][1].tgt_lengths, (L{4, 2}));
  EXPECT_EQ(s[1][1].src_len, 8);
  // Without lengths there is nothing to size buffers from.
  b.src_lengths.clear();
  b.tgt_lengths.clear();
  EXPECT_TRUE(GraphRankShares(b, GraphShape{6, 6}, 1, 2).empty());
}

RunSpec GraphSpec(const std::string& method, std::map<std::string, std::string> knobs) {
  RunSpec spec;
  spec.method = method;
  spec.knobs = std::move(knobs);
  spec.size = "tiny";
  spec.seed = 5;
  spec.max_steps = 100;
  spec.log_every = 100;  // no window closes in the steps below
  spec.checkpoint_every = 100;
  spec.tokens_per_batch = 512;
  spec.dropout = 0;
  spec.valid_sentences = 0;
  spec.moe_path = "static";
  spec.cuda_graph = "on";
  return spec;
}

std::unique_ptr<Training> Build(const RunSpec& spec) {
  return BuildTraining(spec, at::Device(at::kCPU), 1, nullptr, RunEnv{}, std::nullopt);
}

// Graph steps train as TrainStep does on the same batches: one worker, no dropout, no jitter:
// the same routing (the bounded capacity's decisions are the exact capacity's), padding that
// the loss and the routers ignore, so the same losses and gradient norms to rounding, step
// after step, through the warm-up and after it.
TEST(StepGraphs, TrainAsTrainStepDoes) {
  const RunSpec spec = GraphSpec("switch", {{"jitter", "0"}});
  std::unique_ptr<Training> a = Build(spec), b = Build(spec);
  StepGraphs graphs(*b, /*capture=*/false);
  EpochBatches batches(a->data, spec);
  for (int64_t step = 1; step <= 6; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const Batch batch = MakeBatch(batches.pool(), batches.ForStep(step), a->data.vocab);
    const StepValues x = TrainStep(*a, ToDevice(batch, a->device), step);
    const StepValues y = graphs.Step(batch, step);
    EXPECT_NEAR(y.loss, x.loss, 1e-5 * x.loss);
    EXPECT_NEAR(y.nll, x.nll, 1e-5 * x.nll);
    EXPECT_NEAR(y.aux, x.aux, 1e-5 * x.aux);
    EXPECT_NEAR(y.grad_norm, x.grad_norm, 1e-4 * x.grad_norm);
    EXPECT_EQ(y.tokens, x.tokens);
    EXPECT_EQ(y.nonexpert_flops, x.nonexpert_flops);  // the unpadded batch's (Note [MFU])
    EXPECT_EQ(y.lr, x.lr);
  }
  EXPECT_GE(graphs.counts().shapes, 1);
  EXPECT_EQ(graphs.counts().eager, 6);
  EXPECT_EQ(graphs.counts().captures, 0);
}

// On a rank of a process group (one Gloo rank: the rank code paths, its collectives included)
// graph steps train as TrainStep does there: the static path sizes its exchange from the padded
// shares (GraphRankShares) instead of RankShares', with the same losses to rounding.
TEST(StepGraphs, OnARankTrainAsTrainStepDoes) {
  if (!C10dHasGloo()) GTEST_SKIP() << "this build has no Gloo";
  for (const int64_t accum : {1, 2}) {
    SCOPED_TRACE("grad_accum " + std::to_string(accum));
    RunSpec spec = GraphSpec("switch", {{"jitter", "0"}});
    spec.grad_accum = accum;
    auto build = [&] {
      return BuildTraining(spec, at::Device(at::kCPU), 1, testing::OneRankComm(), RunEnv{},
                           std::nullopt);
    };
    std::unique_ptr<Training> a = build(), b = build();
    ASSERT_FALSE(b->comm->plays_all_workers());
    StepGraphs graphs(*b, /*capture=*/false);
    EpochBatches batches(a->data, spec);
    for (int64_t step = 1; step <= 4; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const Batch batch = MakeBatch(batches.pool(), batches.ForStep(step), a->data.vocab);
      const StepValues x = TrainStep(*a, ToDevice(ThisProcessShare(batch, *a->comm), a->device),
                                     step, RankShares(batch, 1, accum));
      const StepValues y = graphs.Step(batch, step);
      EXPECT_NEAR(y.loss, x.loss, 1e-5 * x.loss);
      EXPECT_NEAR(y.aux, x.aux, 1e-5 * x.aux);
      EXPECT_NEAR(y.grad_norm, x.grad_norm, 1e-4 * x.grad_norm);
      EXPECT_EQ(y.nonexpert_flops, x.nonexpert_flops);
    }
    EXPECT_EQ(graphs.counts().eager, 4);
  }
}

// A method metric computed on the device (ObjectiveOutput::metrics): the cross entropy per
// target token, ce_sum / the batch's tokens.
class MetricObjective : public Method {
 public:
  using Method::Method;
  std::shared_ptr<Router> MakeRouter(const LayerSpec& /*layer*/) override { return nullptr; }
  ObjectiveOutput Objective(const ForwardFn& forward) const override {
    ObjectiveOutput out = Method::Objective(forward);
    out.metrics["ce_per_token"] = out.first.ce_sum.detach() / LossNormaliser(out.first);
    return out;
  }
};

// A method's metrics reach the step's values from the device, in graph steps (whose host code a
// replay skips) as in TrainStep: each step's ce / tokens, step after step.
TEST(StepGraphs, MethodMetricsComeFromTheDevice) {
  const RunSpec spec = GraphSpec("switch", {{"jitter", "0"}});
  std::unique_ptr<Training> a = Build(spec), b = Build(spec);
  for (Training* t : {a.get(), b.get()}) {
    t->method = std::make_unique<MetricObjective>(t->method->knobs());
  }
  StepGraphs graphs(*b, /*capture=*/false);
  EpochBatches batches(a->data, spec);
  for (int64_t step = 1; step <= 4; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const Batch batch = MakeBatch(batches.pool(), batches.ForStep(step), a->data.vocab);
    const StepValues x = TrainStep(*a, ToDevice(batch, a->device), step);
    const StepValues y = graphs.Step(batch, step);
    for (const StepValues* v : {&x, &y}) {
      ASSERT_EQ(v->metrics.size(), 1u);
      EXPECT_NEAR(v->metrics.at("ce_per_token"), v->ce / static_cast<double>(v->tokens),
                  1e-6 * v->ce / static_cast<double>(v->tokens));
    }
    EXPECT_NEAR(y.metrics.at("ce_per_token"), x.metrics.at("ce_per_token"),
                1e-5 * x.metrics.at("ce_per_token"));
  }
}

// The method's objective with something a graph would bake in: a host scalar that changes from
// step to step (as a schedule of the step would), or a read of the loss on the host.
class UnreplayableObjective : public Method {
 public:
  UnreplayableObjective(const Knobs& knobs, bool read) : Method(knobs), read_(read) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& /*layer*/) override { return nullptr; }
  ObjectiveOutput Objective(const ForwardFn& forward) const override {
    ObjectiveOutput out = Method::Objective(forward);
    if (read_) {
      out.metrics["loss_seen"] = at::scalar_tensor(out.loss.item<double>());
    } else {
      out.loss = out.loss * (1.0 + 1e-9 * static_cast<double>(++calls_));
    }
    return out;
  }

 private:
  bool read_;
  mutable int64_t calls_ = 0;
};

// The warm-up traces two steps of a shape (after an untraced one) and refuses a step that would
// not replay, saying which method, which steps and which op.
TEST(StepGraphs, TheWarmUpRefusesWhatAGraphWouldBakeIn) {
  for (const bool read : {false, true}) {
    SCOPED_TRACE(read ? "a host read" : "a scalar that changes");
    const RunSpec spec = GraphSpec("switch", {{"jitter", "0"}});
    std::unique_ptr<Training> t = Build(spec);
    t->method = std::make_unique<UnreplayableObjective>(t->method->knobs(), read);
    StepGraphs graphs(*t, /*capture=*/false);
    EpochBatches batches(t->data, spec);
    const Batch batch = MakeBatch(batches.pool(), batches.ForStep(1), t->data.vocab);
    graphs.Step(batch, 1);  // untraced
    try {
      graphs.Step(batch, 2);
      graphs.Step(batch, 3);
      ADD_FAILURE() << "the warm-up passed";
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("cuda_graph: method switch, a step of "), std::string::npos) << what;
      if (read) {
        EXPECT_NE(what.find("reads a value on the host: aten::item("), std::string::npos) << what;
      } else {
        EXPECT_NE(what.find("is not the same at steps 2 and 3"), std::string::npos) << what;
        EXPECT_NE(what.find("aten::mul("), std::string::npos) << what;
      }
    }
  }
}

// Note [Warm-up verdicts on ranks]: on two Gloo ranks where only rank 1's step reads the host,
// both ranks stop at that traced step, rank 1 with its reason and rank 0 naming rank 1 (before,
// rank 0 went on into its next step's collectives, where rank 1 never came).
TEST(StepGraphs, AWarmUpFailureOnOneRankStopsEveryRank) {
  if (!C10dHasGloo()) GTEST_SKIP() << "this build has no Gloo";
  RunSpec spec = GraphSpec("switch", {{"jitter", "0"}});
  spec.workers = 2;
  spec.world_size = 2;
  const Topology topo{2, 2};
  const std::string port_file = testing::RankPortFile();
  std::vector<std::string> errors(2);
  std::vector<int64_t> stopped_at(2, 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto comm = std::make_unique<C10dComm>(testing::RankOptions(topo, r, port_file, false));
        std::unique_ptr<Training> t =
            BuildTraining(spec, at::Device(at::kCPU), 1, std::move(comm), RunEnv{}, std::nullopt);
        if (r == 1) t->method = std::make_unique<UnreplayableObjective>(t->method->knobs(), true);
        StepGraphs graphs(*t, /*capture=*/false);
        EpochBatches batches(t->data, spec);
        // One batch (one padded shape) at every step, so that steps 2 and 3 are its traced
        // warm-up and step 4 would capture.
        const Batch batch = MakeBatch(batches.pool(), batches.ForStep(1), t->data.vocab);
        for (int64_t step = 1; step <= 4; ++step) {
          stopped_at[static_cast<size_t>(r)] = step;
          graphs.Step(batch, step);
        }
        stopped_at[static_cast<size_t>(r)] = 0;
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::remove(port_file.c_str());
  // Step 1 runs untraced; step 2 is the first traced one.
  EXPECT_EQ(stopped_at[1], 2) << errors[1];
  EXPECT_NE(errors[1].find("reads a value on the host: aten::item("), std::string::npos)
      << errors[1];
  EXPECT_EQ(stopped_at[0], 2) << errors[0];
  EXPECT_NE(errors[0].find("cuda_graph: method switch: the warm-up check failed on rank 1"),
            std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace moebench
