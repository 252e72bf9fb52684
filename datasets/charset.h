// Conversion of legacy-encoded text (a few gettext catalogs are still EUC-JP, ISO-8859-x, ...)
// to UTF-8, through ICU's converters.
#pragma once

#include <string>

namespace moebench {

// Converts `bytes` from `charset` (any name ICU knows, e.g. "EUC-JP", "ISO-8859-1") to UTF-8.
// Throws std::runtime_error naming the charset when it is unknown or the bytes are not valid
// in it (no silent substitution characters).
std::string ConvertToUtf8(const std::string& bytes, const std::string& charset);

}  // namespace moebench
