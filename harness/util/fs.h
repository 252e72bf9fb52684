// Filesystem helpers that do not go through std::filesystem's out-of-line functions.
// See Note [libtorch's std::filesystem] in harness/util/fs.cpp.
#pragma once

#include <string>

namespace moebench {

// Removes `path` and everything under it (symbolic links are removed, not followed), like
// std::filesystem::remove_all. A path that does not exist is no error; any other failure throws
// std::runtime_error naming the entry.
void RemoveTree(const std::string& path);

}  // namespace moebench
