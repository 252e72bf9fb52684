// Precompiled header for every translation unit that uses LibTorch.
// Note [Torch includes]: parsing <torch/torch.h> costs ~20 s per translation unit on the
// 2-core machines; CMake compiles this header once per target (target_precompile_headers) and
// every torch-using file then includes only the narrow headers it needs, which are no-ops here.
#pragma once
#include <torch/torch.h>
