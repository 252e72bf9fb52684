#include "harness/bleu/unicode_text.h"

#include <unicode/ustring.h>
#include <unicode/utypes.h>

#include <cstdint>
#include <stdexcept>

#include "harness/util/utf8.h"

namespace moebench {

namespace {

// Encodes `c` without checking it: unlike AppendUtf8 in harness/util/utf8.h, surrogates and values
// above U+10FFFF are not replaced with U+FFFD (EncodeUtf8 has never done that).
void AppendUtf8Unchecked(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

bool IsAscii(const std::string& text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

void ThrowIfIcuFailed(UErrorCode status, const char* what) {
  if (U_FAILURE(status)) {
    throw std::runtime_error(std::string("LowerUnicode: ICU ") + what +
                             " failed: " + u_errorName(status));
  }
}

}  // namespace

std::string Utf8Problem(const std::string& text) {
  size_t bad_offset = 0;
  if (IsValidUtf8(text, &bad_offset)) return "";
  return "invalid UTF-8 at byte offset " + std::to_string(bad_offset);
}

std::u32string DecodeUtf8(const std::string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t c = 0;
    const size_t length = DecodeCodePointAt(text, pos, &c);
    if (length == 0) {
      throw std::runtime_error("invalid UTF-8 at byte offset " + std::to_string(pos) + " in \"" +
                               text.substr(0, 80) + "\"");
    }
    out.push_back(static_cast<char32_t>(c));
    pos += length;
  }
  return out;
}

std::string EncodeUtf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) AppendUtf8Unchecked(c, &out);
  return out;
}

bool IsPyWhitespace(char32_t c) {
  // The code points for which CPython's str.isspace() is true (Unicode 14/15 data).
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (c < 0x85) return false;
  switch (c) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::vector<std::u32string> SplitWhitespace(const std::u32string& text) {
  std::vector<std::u32string> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && IsPyWhitespace(text[pos])) ++pos;
    const size_t start = pos;
    while (pos < text.size() && !IsPyWhitespace(text[pos])) ++pos;
    if (pos > start) fields.push_back(text.substr(start, pos - start));
  }
  return fields;
}

std::vector<std::string> SplitWhitespace(const std::string& text) {
  std::vector<std::string> fields;
  if (IsAscii(text)) {
    // Fast path for the common case: only ASCII whitespace can occur.
    size_t pos = 0;
    while (pos < text.size()) {
      while (pos < text.size() && IsPyWhitespace(static_cast<unsigned char>(text[pos]))) ++pos;
      const size_t start = pos;
      while (pos < text.size() && !IsPyWhitespace(static_cast<unsigned char>(text[pos]))) ++pos;
      if (pos > start) fields.push_back(text.substr(start, pos - start));
    }
    return fields;
  }
  for (const std::u32string& field : SplitWhitespace(DecodeUtf8(text))) {
    fields.push_back(EncodeUtf8(field));
  }
  return fields;
}

std::string RStripWhitespace(const std::string& text) {
  if (IsAscii(text)) {
    size_t end = text.size();
    while (end > 0 && IsPyWhitespace(static_cast<unsigned char>(text[end - 1]))) --end;
    return text.substr(0, end);
  }
  std::u32string decoded = DecodeUtf8(text);
  size_t end = decoded.size();
  while (end > 0 && IsPyWhitespace(decoded[end - 1])) --end;
  decoded.resize(end);
  return EncodeUtf8(decoded);
}

std::u32string StripWhitespace(const std::u32string& text) {
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && IsPyWhitespace(text[begin])) ++begin;
  while (end > begin && IsPyWhitespace(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

std::string LowerUnicode(const std::string& text) {
  if (IsAscii(text)) {
    std::string out = text;
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
  }
  const std::string problem = Utf8Problem(text);
  if (!problem.empty()) throw std::runtime_error("LowerUnicode: " + problem);

  UErrorCode status = U_ZERO_ERROR;
  int32_t utf16_length = 0;
  u_strFromUTF8(nullptr, 0, &utf16_length, text.data(), static_cast<int32_t>(text.size()), &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) status = U_ZERO_ERROR;
  ThrowIfIcuFailed(status, "u_strFromUTF8");
  std::u16string utf16(static_cast<size_t>(utf16_length), u'\0');
  u_strFromUTF8(reinterpret_cast<UChar*>(&utf16[0]), utf16_length, nullptr, text.data(),
                static_cast<int32_t>(text.size()), &status);
  ThrowIfIcuFailed(status, "u_strFromUTF8");

  // Full case mapping can lengthen the text (one code point may lower to several).
  const int32_t lower_length = u_strToLower(
      nullptr, 0, reinterpret_cast<const UChar*>(utf16.data()), utf16_length, "", &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) status = U_ZERO_ERROR;
  ThrowIfIcuFailed(status, "u_strToLower");
  std::u16string lower(static_cast<size_t>(lower_length), u'\0');
  u_strToLower(reinterpret_cast<UChar*>(&lower[0]), lower_length,
               reinterpret_cast<const UChar*>(utf16.data()), utf16_length, "", &status);
  ThrowIfIcuFailed(status, "u_strToLower");

  int32_t utf8_length = 0;
  u_strToUTF8(nullptr, 0, &utf8_length, reinterpret_cast<const UChar*>(lower.data()), lower_length,
              &status);
  if (status == U_BUFFER_OVERFLOW_ERROR) status = U_ZERO_ERROR;
  ThrowIfIcuFailed(status, "u_strToUTF8");
  std::string out(static_cast<size_t>(utf8_length), '\0');
  u_strToUTF8(&out[0], utf8_length, nullptr, reinterpret_cast<const UChar*>(lower.data()),
              lower_length, &status);
  ThrowIfIcuFailed(status, "u_strToUTF8");
  return out;
}

}  // namespace moebench
