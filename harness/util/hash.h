// SHA-256 (FIPS 180-4), implemented here so content hashes (corpora, vocabularies, run ids)
// do not depend on which crypto library a machine happens to have.
#pragma once

#include <string>

namespace moebench {

// Lower-case hexadecimal SHA-256 digest (64 characters) of `bytes`.
std::string Sha256Hex(const std::string& bytes);

}  // namespace moebench
