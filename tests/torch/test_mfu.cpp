// MFU (Note [MFU] in harness/train/device_peak.h): the arithmetic by hand on a step whose FLOPs
// are counted by hand, the data-sheet peaks, and the measured GEMM rate.
#include <gtest/gtest.h>

#include "harness/model/compute_model.h"
#include "harness/train/device_peak.h"

namespace moebench {
namespace {

// The step of ComputeModel.GatingDropoutBaseWorkerStepByHand (size base, 16 experts, vocab
// 16000, one worker's 32 x 32 + 32 x 32 tokens, top-1): 324840456192 FLOPs forward and backward,
// i.e. 6 N D plus attention's quadratic terms and the router. In 10 ms on an H100 (bf16 data
// sheet 989.4 TFLOP/s): 3.24840456192e13 / 9.894e14 = 0.0328320655...; on a V100 (125 TFLOP/s):
// 0.25987236495...
TEST(Mfu, OfTheBaseWorkerStepByHand) {
  ModelConfig cfg = SizePreset("base");
  cfg.num_experts = 16;
  cfg.vocab = 16000;
  const ForwardFlops f = ModelForwardFlops(cfg, 0, 16, 32, 32, 32);
  const double step =
      kTrainingFlopsPerForward * (f.total() + 6 * ExpertForwardFlops(1024, 512, 2048));
  ASSERT_DOUBLE_EQ(step, 324840456192.0);
  const double h100 = DataSheetPeak("NVIDIA H100 80GB HBM3", true);
  EXPECT_NEAR(Mfu(step, 0.010, h100), 0.0328320655136, 1e-12);
  EXPECT_NEAR(Mfu(step, 0.010, DataSheetPeak("Tesla V100-SXM2-32GB", true)), 0.2598723649536,
              1e-12);
  // Twice the time, half the MFU; nothing measured, no MFU.
  EXPECT_NEAR(Mfu(step, 0.020, h100), 0.0328320655136 / 2, 1e-12);
  EXPECT_EQ(Mfu(step, 0.0, h100), 0.0);
  EXPECT_EQ(Mfu(0.0, 0.010, h100), 0.0);
  EXPECT_EQ(Mfu(step, 0.010, 0.0), 0.0);
}

TEST(Mfu, DataSheetPeaksByDriverName) {
  EXPECT_EQ(DataSheetPeak("NVIDIA H100 80GB HBM3", true), 989.4e12);
  EXPECT_EQ(DataSheetPeak("NVIDIA H100 80GB HBM3", false), 66.9e12);
  EXPECT_EQ(DataSheetPeak("NVIDIA H100 PCIe", true), 756.0e12);
  EXPECT_EQ(DataSheetPeak("NVIDIA H200", true), 989.4e12);
  // NVL parts (lower clocks and power): half their sparse data-sheet figure, 1671 TFLOP/s.
  EXPECT_EQ(DataSheetPeak("NVIDIA H100 NVL", true), 835.5e12);
  EXPECT_EQ(DataSheetPeak("NVIDIA H200 NVL", false), 60.0e12);
  EXPECT_EQ(DataSheetPeak("NVIDIA A100-SXM4-80GB", true), 312.0e12);
  EXPECT_EQ(DataSheetPeak("Tesla V100-SXM2-32GB", false), 15.7e12);
  EXPECT_EQ(DataSheetPeak("NVIDIA GeForce RTX 4090", true), 0.0);  // not in the table: measured
}

// The CPU's peak is measured: a positive rate, and one n x n product at that rate takes no
// less time than the best measured one (the rate is the best of the repetitions).
TEST(Mfu, CpuPeakIsTheMeasuredGemmRate) {
  const DevicePeak p = FindDevicePeak(at::Device(at::kCPU), false);
  EXPECT_GT(p.flops_per_s, 1e8);   // any CPU of this century
  EXPECT_LT(p.flops_per_s, 1e14);  // and no CPU socket reaches 100 TFLOP/s in fp32
  EXPECT_NE(p.source.find("measured"), std::string::npos) << p.source;
  EXPECT_NE(p.source.find("fp32"), std::string::npos) << p.source;
  const double small = MeasuredGemmFlops(at::Device(at::kCPU), at::kFloat, 64, 3);
  EXPECT_GT(small, 0.0);
}

// Measuring the peak draws nothing from the global generator, which seeds the model's weights
// right after (BuildTraining): runs in fp32 and bf16 start from the same weights.
TEST(Mfu, MeasuringThePeakLeavesTheGlobalGeneratorAlone) {
  at::manual_seed(11);
  const at::Tensor want = at::randn({4});
  at::manual_seed(11);
  FindDevicePeak(at::Device(at::kCPU), false);
  FindDevicePeak(at::Device(at::kCPU), true);
  EXPECT_TRUE(at::equal(at::randn({4}), want));
}

TEST(Mfu, PeakMemoryIsThisProcessResidentSet) {
  const double before = PeakMemoryBytes(at::Device(at::kCPU));
  EXPECT_GT(before, 1e6);  // a process with LibTorch loaded holds more than a megabyte
  {
    at::Tensor big = at::ones({64, 1024, 1024});  // 256 MiB, touched
    EXPECT_EQ(big.sum().item<double>(), 64.0 * 1024 * 1024);
  }
  EXPECT_GE(PeakMemoryBytes(at::Device(at::kCPU)), 256.0 * 1024 * 1024);
}

}  // namespace
}  // namespace moebench
