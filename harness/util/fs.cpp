#include "harness/util/fs.h"

#include <ftw.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace moebench {

// Note [libtorch's std::filesystem]
// PyTorch's wheels export some of libstdc++'s std::filesystem functions from libtorch.so, and
// in a CUDA build against one (torch 2.11 on an H100 machine) std::filesystem::remove_all bound
// to that copy, which jumped to address 0: every test fixture that cleaned up its folder crashed.
// Naming libstdc++ first on the link line did not change the binding. Code linked with LibTorch
// removes trees with RemoveTree (nftw and remove(3) from the C library) instead.

namespace {

thread_local std::string g_failed_entry;  // nftw's callback cannot carry state or throw

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  if (std::remove(path) != 0 && errno != ENOENT) {
    g_failed_entry = path;
    return -1;  // stops the walk; nftw returns -1 with errno as remove left it
  }
  return 0;
}

}  // namespace

void RemoveTree(const std::string& path) {
  g_failed_entry.clear();
  // FTW_DEPTH: a folder after its contents; FTW_PHYS: links themselves, never their targets.
  if (nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
    const std::string entry = g_failed_entry.empty() ? path : g_failed_entry;
    throw std::runtime_error("cannot remove " + entry + ": " + std::strerror(errno));
  }
}

}  // namespace moebench
