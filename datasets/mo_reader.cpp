#include "datasets/mo_reader.h"

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace moebench {
namespace {

constexpr uint32_t kMoMagic = 0x950412de;
constexpr uint32_t kMoMagicSwapped = 0xde120495;
constexpr size_t kHeaderBytes = 28;  // magic, revision, N, O, T, S, H
constexpr char kContextSeparator = '\x04';

class MoBytes {
 public:
  MoBytes(const std::string& bytes, const std::string& source_name)
      : bytes_(bytes), source_name_(source_name) {}

  [[noreturn]] void Fail(const std::string& what) const {
    throw std::runtime_error("mo file '" + source_name_ + "': " + what);
  }

  uint32_t Word(uint64_t offset) const {
    if (offset + 4 > bytes_.size()) {
      Fail("truncated: needs 4 bytes at offset " + std::to_string(offset) + " but has " +
           std::to_string(bytes_.size()));
    }
    auto b = [&](uint64_t i) {
      return static_cast<uint32_t>(static_cast<unsigned char>(bytes_[i]));
    };
    if (big_endian_) {
      return (b(offset) << 24) | (b(offset + 1) << 16) | (b(offset + 2) << 8) | b(offset + 3);
    }
    return b(offset) | (b(offset + 1) << 8) | (b(offset + 2) << 16) | (b(offset + 3) << 24);
  }

  // String `index` of the table at `table_offset`: a (length, offset) descriptor pair.
  std::string TableString(uint64_t table_offset, uint32_t index, const char* table_name) const {
    uint64_t descriptor = table_offset + 8ULL * index;
    uint32_t length = Word(descriptor);
    uint32_t offset = Word(descriptor + 4);
    if (uint64_t(offset) + length > bytes_.size()) {
      Fail(std::string(table_name) + " string " + std::to_string(index) + " (offset " +
           std::to_string(offset) + ", length " + std::to_string(length) +
           ") runs past the end of the file (" + std::to_string(bytes_.size()) + " bytes)");
    }
    return bytes_.substr(offset, length);
  }

  void set_big_endian(bool big_endian) { big_endian_ = big_endian; }
  size_t size() const { return bytes_.size(); }

 private:
  const std::string& bytes_;
  const std::string& source_name_;
  bool big_endian_ = false;
};

std::vector<std::string> SplitOnNul(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace

MoCatalog ParseMo(const std::string& bytes, const std::string& source_name) {
  MoBytes mo(bytes, source_name);
  if (bytes.size() < kHeaderBytes) {
    mo.Fail("too short for a .mo header (" + std::to_string(bytes.size()) + " bytes)");
  }
  uint32_t magic = mo.Word(0);
  if (magic == kMoMagicSwapped) {
    mo.set_big_endian(true);
  } else if (magic != kMoMagic) {
    mo.Fail("bad magic number (not a GNU .mo file)");
  }
  uint32_t revision = mo.Word(4);
  if ((revision >> 16) > 1) {
    mo.Fail("unsupported major revision " + std::to_string(revision >> 16));
  }
  uint32_t count = mo.Word(8);
  uint32_t originals = mo.Word(12);
  uint32_t translations = mo.Word(16);
  for (uint32_t table : {originals, translations}) {
    if (uint64_t(table) + 8ULL * count > bytes.size()) {
      mo.Fail("string table at offset " + std::to_string(table) + " with " + std::to_string(count) +
              " entries runs past the end of the file");
    }
  }

  MoCatalog catalog;
  for (uint32_t i = 0; i < count; ++i) {
    std::string key = mo.TableString(originals, i, "original");
    std::string value = mo.TableString(translations, i, "translation");
    if (key.empty()) {
      catalog.header = value;
      continue;
    }
    MoMessage message;
    size_t separator = key.find(kContextSeparator);
    if (separator != std::string::npos) {
      message.context = key.substr(0, separator);
      key = key.substr(separator + 1);
    }
    std::vector<std::string> ids = SplitOnNul(key);
    message.msgid = ids[0];
    if (ids.size() > 1) message.msgid_plural = ids[1];
    message.msgstr = SplitOnNul(value);
    catalog.messages.push_back(std::move(message));
  }
  return catalog;
}

MoCatalog ReadMoFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("mo file '" + path + "': cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return ParseMo(buffer.str(), path);
}

std::string MoHeaderCharset(const std::string& header) {
  std::istringstream lines(header);
  std::string line;
  while (std::getline(lines, line)) {
    std::string lower;
    for (char c : line) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.rfind("content-type:", 0) != 0) continue;
    size_t at = lower.find("charset=");
    if (at == std::string::npos) return "";
    std::string charset = line.substr(at + 8);
    size_t end = charset.find_first_of("; \t\r");
    return end == std::string::npos ? charset : charset.substr(0, end);
  }
  return "";
}

}  // namespace moebench
