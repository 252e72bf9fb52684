// Which BLAS kernels this process runs: OpenBLAS picks its kernels per CPU at load time (or
// from OPENBLAS_CORETYPE), and the choice changes GEMM speed ~2x here, so runs and benchmarks
// record it. Looked up at run time (dlsym): empty when the BLAS in use is not OpenBLAS.
#pragma once

#include <string>

namespace moebench {

struct BlasInfo {
  std::string core;    // openblas_get_corename(), e.g. "Haswell"; "" if not OpenBLAS
  std::string config;  // openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
};

BlasInfo DetectBlas();

}  // namespace moebench
