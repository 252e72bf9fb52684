// Unicode text helpers that reproduce Python 3 `str` semantics, because sacreBLEU's behaviour is
// defined by them: `str.split()` / `str.rstrip()` treat every Unicode whitespace character as a
// separator (not just ASCII), `str.lower()` applies full case mapping, and `for c in s` walks
// code points, not bytes. Everything here takes and returns UTF-8.
#pragma once

#include <string>
#include <vector>

namespace moebench {

// Decodes strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), like Python's
// 'utf-8' codec. Throws std::runtime_error naming the byte offset of the first bad sequence.
std::u32string DecodeUtf8(const std::string& text);
std::string EncodeUtf8(const std::u32string& text);
// Empty when `text` is valid UTF-8, otherwise a message saying where it is not.
std::string Utf8Problem(const std::string& text);

// Python's str.isspace() for one code point: bidi class WS/B/S or category Zs.
bool IsPyWhitespace(char32_t c);

// Python's text.split() with no arguments: runs of Unicode whitespace separate fields and
// leading or trailing whitespace yields no empty field.
std::vector<std::string> SplitWhitespace(const std::string& text);
std::vector<std::u32string> SplitWhitespace(const std::u32string& text);

// Python's text.rstrip() and text.strip() with no arguments.
std::string RStripWhitespace(const std::string& text);
std::u32string StripWhitespace(const std::u32string& text);

// Python's text.lower(): full Unicode lower-casing (ICU root locale), so 'İ' becomes "i̇" and a
// word-final 'Σ' becomes 'ς'.
std::string LowerUnicode(const std::string& text);

}  // namespace moebench
