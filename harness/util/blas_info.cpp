#include "harness/util/blas_info.h"

#include <dlfcn.h>

namespace moebench {

BlasInfo DetectBlas() {
  using NameFn = char* (*)();
  BlasInfo info;
  if (auto core = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) {
    if (const char* s = core()) info.core = s;
  }
  if (auto config = reinterpret_cast<NameFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    if (const char* s = config()) info.config = s;
  }
  return info;
}

}  // namespace moebench
