// Test helper: writes GNU .mo bytes, independently of datasets/mo_reader, so the reader's
// tests compare against a layout written out here.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moebench {
namespace testing {

inline void AppendWord(uint32_t value, bool big_endian, std::string& out) {
  for (int i = 0; i < 4; ++i) {
    int shift = big_endian ? 24 - 8 * i : 8 * i;
    out += static_cast<char>((value >> shift) & 0xFF);
  }
}

// A .mo file holding `entries` (key, value) in the given order: the 28-byte header, the
// original and translation descriptor tables, no hash table, then each string with a NUL.
inline std::string BuildMo(const std::vector<std::pair<std::string, std::string>>& entries,
                           bool big_endian) {
  const uint32_t n = static_cast<uint32_t>(entries.size());
  const uint32_t originals = 28;
  const uint32_t translations = originals + 8 * n;
  uint32_t offset = translations + 8 * n;
  std::string tables, strings;
  std::string original_table, translation_table;
  for (const auto& entry : entries) {
    AppendWord(static_cast<uint32_t>(entry.first.size()), big_endian, original_table);
    AppendWord(offset, big_endian, original_table);
    strings += entry.first;
    strings += '\0';
    offset += static_cast<uint32_t>(entry.first.size()) + 1;
  }
  for (const auto& entry : entries) {
    AppendWord(static_cast<uint32_t>(entry.second.size()), big_endian, translation_table);
    AppendWord(offset, big_endian, translation_table);
    strings += entry.second;
    strings += '\0';
    offset += static_cast<uint32_t>(entry.second.size()) + 1;
  }
  std::string out;
  AppendWord(0x950412de, big_endian, out);
  AppendWord(0, big_endian, out);  // revision
  AppendWord(n, big_endian, out);
  AppendWord(originals, big_endian, out);
  AppendWord(translations, big_endian, out);
  AppendWord(0, big_endian, out);  // hash table size
  AppendWord(0, big_endian, out);  // hash table offset
  return out + original_table + translation_table + strings;
}

inline const char* kUtf8Header =
    "Project-Id-Version: test\nContent-Type: text/plain; charset=UTF-8\n";

}  // namespace testing
}  // namespace moebench
