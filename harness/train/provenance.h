// What a run records about where and with what it ran (runs.libs and the other provenance
// columns): library versions, the corpus and its hashes, the environment that changes timings
// (BLAS kernels, thread policy), the device and the process group.
#pragma once

#include <string>

#include "harness/store/store.h"
#include "harness/train/training.h"

namespace moebench {

// Fills the provenance columns of `row` (host, device, world size, threads, libs, parameter
// counts) from the built training.
void FillProvenance(RunRow& row, const Training& t);

// A warning worth printing about this machine's BLAS, or "".
std::string BlasWarning();

}  // namespace moebench
