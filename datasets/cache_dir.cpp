#include "datasets/cache_dir.h"

#include <cstdlib>
#include <filesystem>

namespace moebench {

std::string ResolveDataCacheDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* env = std::getenv("MOEBENCH_CACHE");
  if (env != nullptr && env[0] != '\0') return env;
  return (std::filesystem::current_path() / "data-cache").string();
}

}  // namespace moebench
