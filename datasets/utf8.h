// UTF-8 validation and decoding for the text readers (files corpus, gettext catalogs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moebench {

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF). On failure, *error_offset (if given) is the byte offset of the first bad
// sequence.
bool IsValidUtf8(const std::string& text, size_t* error_offset = nullptr);

// Decodes the code point starting at text[*pos] and advances *pos past it. Requires valid UTF-8
// at *pos (check with IsValidUtf8 first); returns U+FFFD and advances one byte otherwise.
uint32_t NextCodePoint(const std::string& text, size_t* pos);

// Appends the UTF-8 encoding of `code_point` (U+FFFD for surrogates and values > U+10FFFF).
void AppendUtf8(uint32_t code_point, std::string& out);

}  // namespace moebench
