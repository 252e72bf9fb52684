// The peak FLOP/s a run's MFU is measured against (Note [MFU]).
#pragma once

#include <string>

#include <ATen/ATen.h>

namespace moebench {

// Note [MFU]
// Model FLOPs utilisation, as MoE-CAP's S-MFU defines it for sparse models: the FLOPs the model
// needs per step on its *active* parameters -- attention, the dense FFNs, the router, the
// output projection and only the expert rows tokens were routed to (dropped tokens, skipped
// layers, capacity padding and the pad positions of a batch's shorter sentences add nothing:
// each sentence counts at its real length) -- forward and backward (3 x the forward, Note
// [Compute model]), divided by the step's measured wall-clock (its batch included), divided
// by the device's peak for the run's precision:
//
//   mfu = flops_per_step / step_seconds / peak
//
// flops_per_step is the whole step's work: on one process playing W workers every worker's,
// on a process group every rank's (each counts its tokens and its experts; the metric window
// sums them), so both count the same step alike. `peak` is one device's, times the devices
// that ran the step: 1 for one process, the world size on ranks (one device each). The peak:
//   - CUDA: the data sheet's dense peak of the GPU named by the driver for the precision
//     (bf16: tensor cores; fp32: plain fp32, LibTorch leaving TF32 off for matmuls), for the
//     parts in DataSheetPeak; any other GPU is measured like the CPU.
//   - CPU (and unknown GPUs): measured at the start of the run, on this process's threads: the
//     best of 5 timed products of two 1024 x 1024 matrices in the run's precision (after one
//     untimed), 2 * 1024^3 FLOPs each. It is what this machine's BLAS reaches on a large,
//     square GEMM, so an MFU near 1 means the step runs at GEMM speed.
// The run records peak_tflops (with how it was obtained in the log), model_tflops (achieved)
// and mfu at every log step.

struct DevicePeak {
  double flops_per_s = 0;
  std::string source;  // "data sheet: ..." or "measured: ..."
};

// The peak for a run on `device` in bf16 or fp32 (CPU: on the current intra-op threads).
DevicePeak FindDevicePeak(const at::Device& device, bool bf16);

// A GPU's data-sheet peak for its driver name ("NVIDIA H100 80GB HBM3", ...); 0 when the part
// is not in the table.
double DataSheetPeak(const std::string& gpu_name, bool bf16);

// The best-of-`reps` rate of n x n GEMMs on `device` in the dtype; after one untimed product.
double MeasuredGemmFlops(const at::Device& device, at::ScalarType dtype, int64_t n, int reps);

// flops_per_step / step_seconds / peak; 0 when either is not positive.
double Mfu(double flops_per_step, double step_seconds, double peak_flops);

// The process's peak resident memory (CPU, bytes; getrusage) or the GPU's peak allocated
// memory since the process started (CUDA).
double PeakMemoryBytes(const at::Device& device);

}  // namespace moebench
