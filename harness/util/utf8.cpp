#include "harness/util/utf8.h"

namespace moebench {
namespace {

constexpr uint32_t kReplacementCharacter = 0xFFFD;

}  // namespace

size_t DecodeCodePointAt(const std::string& text, size_t pos, uint32_t* code_point) {
  const size_t n = text.size();
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char b0 = byte(pos);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  size_t length = 0;
  uint32_t value = 0;
  uint32_t minimum = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
    value = b0 & 0x1F;
    minimum = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    value = b0 & 0x0F;
    minimum = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    value = b0 & 0x07;
    minimum = 0x10000;
  } else {
    return 0;  // continuation byte, overlong lead (C0, C1) or beyond U+10FFFF (F5..FF)
  }
  if (pos + length > n) return 0;
  for (size_t i = 1; i < length; ++i) {
    unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return 0;
  *code_point = value;
  return length;
}

bool IsValidUtf8(const std::string& text, size_t* error_offset) {
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t code_point = 0;
    size_t length = DecodeCodePointAt(text, pos, &code_point);
    if (length == 0) {
      if (error_offset != nullptr) *error_offset = pos;
      return false;
    }
    pos += length;
  }
  return true;
}

uint32_t NextCodePoint(const std::string& text, size_t* pos) {
  uint32_t code_point = 0;
  size_t length = DecodeCodePointAt(text, *pos, &code_point);
  if (length == 0) {
    ++*pos;
    return kReplacementCharacter;
  }
  *pos += length;
  return code_point;
}

void AppendUtf8(uint32_t code_point, std::string& out) {
  if (code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    code_point = kReplacementCharacter;
  }
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

}  // namespace moebench
