// The benchmark families. Each registers its benchmarks explicitly from main (bench_main.cpp),
// with the shapes of the configured mode; no static self-registration.
#pragma once

#include "bench/bench_util.h"

namespace moebench::bench {

// Every router of the method registry alone, forward (tokens/s).
void RegisterRouterBenchmarks(const BenchConfig& config);
// Dispatch + experts + combine, forward and backward: the index path against the einsum oracle.
void RegisterDispatchBenchmarks(const BenchConfig& config);
// The MoE layer forward + backward against the equal-FLOP dense FFN, side by side.
void RegisterLayerBenchmarks(const BenchConfig& config);
// The experts' six GEMMs on one CPU thread, split per expert against one product of all rows.
void RegisterGemmBenchmarks(const BenchConfig& config);
// One full training step (forward, backward, clip, Adam) per size preset.
void RegisterTrainStepBenchmarks(const BenchConfig& config);
// All-to-all over Gloo on loopback, 2 ranks (a peer process), against the meter's byte counts.
void RegisterAllToAllBenchmarks(const BenchConfig& config);
// In the peer process of the all-to-all family: serves rank 1 and returns its exit code;
// -1 when this process is not the peer.
int RunBenchPeerIfAsked();
// Ends the peer process (if one was started); called before exit.
void ShutdownAllToAllPeer();

}  // namespace moebench::bench
