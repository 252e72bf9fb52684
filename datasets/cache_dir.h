// Where downloaded and derived data (SentencePiece models, l10n packages) are cached.
#pragma once

#include <string>

namespace moebench {

// `configured` when non-empty, else $MOEBENCH_CACHE when set and non-empty, else
// <current directory>/data-cache.
std::string ResolveDataCacheDir(const std::string& configured);

}  // namespace moebench
