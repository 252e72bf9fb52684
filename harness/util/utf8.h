// UTF-8 validation and decoding, shared by the text readers (files corpus, gettext catalogs) and
// the BLEU text helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moebench {

// True when `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF). On failure, *error_offset (if given) is the byte offset of the first bad
// sequence.
bool IsValidUtf8(const std::string& text, size_t* error_offset = nullptr);

// The one strict UTF-8 decoder that IsValidUtf8, NextCodePoint and the BLEU text helpers
// (harness/bleu/unicode_text.h) share. Requires pos < text.size(). Returns the length (1..4) of
// the well-formed sequence at text[pos] and stores its code point in *code_point, or returns 0
// (leaving *code_point alone) when the bytes there are ill-formed: a continuation or invalid lead
// byte, a truncated sequence, an overlong form, a surrogate or a value above U+10FFFF.
size_t DecodeCodePointAt(const std::string& text, size_t pos, uint32_t* code_point);

// Decodes the code point starting at text[*pos] and advances *pos past it. Requires valid UTF-8
// at *pos (check with IsValidUtf8 first); returns U+FFFD and advances one byte otherwise.
uint32_t NextCodePoint(const std::string& text, size_t* pos);

// Appends the UTF-8 encoding of `code_point` (U+FFFD for surrogates and values > U+10FFFF).
void AppendUtf8(uint32_t code_point, std::string& out);

}  // namespace moebench
