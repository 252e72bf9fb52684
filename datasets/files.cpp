#include "datasets/files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "harness/util/hash.h"
#include "harness/util/utf8.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

struct TextFile {
  std::string path;
  std::vector<std::string> lines;
  std::string sha256;
};

TextFile ReadLines(const fs::path& path) {
  TextFile file;
  file.path = path.string();
  if (!fs::exists(path)) {
    throw std::runtime_error("files dataset: missing file '" + file.path + "'");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("files dataset: cannot open '" + file.path + "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = buffer.str();
  if (bytes.empty()) throw std::runtime_error("files dataset: '" + file.path + "' is empty");
  file.sha256 = Sha256Hex(bytes);

  size_t start = 0;
  if (bytes.compare(0, 3, "\xEF\xBB\xBF") == 0) start = 3;
  int line_number = 0;
  while (start < bytes.size()) {
    size_t end = bytes.find('\n', start);
    if (end == std::string::npos) end = bytes.size();
    std::string line = bytes.substr(start, end - start);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t bad_offset = 0;
    if (!IsValidUtf8(line, &bad_offset)) {
      throw std::runtime_error("files dataset: '" + file.path + "' line " +
                               std::to_string(line_number) + ": invalid UTF-8 at byte " +
                               std::to_string(bad_offset + 1) + " of the line");
    }
    file.lines.push_back(std::move(line));
    start = end + 1;
  }
  return file;
}

bool IsBlank(const std::string& line) { return line.find_first_not_of(" \t") == std::string::npos; }

}  // namespace

ParallelCorpus LoadFilesCorpus(const std::string& dir, const std::vector<std::string>& langs,
                               const std::string& src_lang, const FilesSplitPrefixes& prefixes) {
  if (langs.empty()) throw std::runtime_error("files dataset: no target languages given");
  if (src_lang.empty()) throw std::runtime_error("files dataset: empty source language");
  if (!fs::is_directory(dir)) {
    throw std::runtime_error("files dataset: '" + dir + "' is not a directory");
  }
  ParallelCorpus corpus;
  corpus.name = "files";
  corpus.langs = langs;
  nlohmann::json file_records = nlohmann::json::array();
  int64_t skipped_empty = 0;

  const std::string* split_prefixes[3] = {&prefixes.train, &prefixes.valid, &prefixes.test};
  std::vector<ParallelExample>* split_examples[3] = {&corpus.train, &corpus.valid, &corpus.test};
  for (int s = 0; s < 3; ++s) {
    const std::string& prefix = *split_prefixes[s];
    for (const std::string& lang : langs) {
      if (lang == src_lang) {
        throw std::runtime_error("files dataset: target language '" + lang +
                                 "' equals the source language");
      }
      fs::path pair_src = fs::path(dir) / (prefix + "." + src_lang + "-" + lang + "." + src_lang);
      fs::path pair_tgt = fs::path(dir) / (prefix + "." + src_lang + "-" + lang + "." + lang);
      bool pair_files = fs::exists(pair_src);
      TextFile src = ReadLines(pair_files ? pair_src : fs::path(dir) / (prefix + "." + src_lang));
      TextFile tgt = ReadLines(pair_files ? pair_tgt : fs::path(dir) / (prefix + "." + lang));
      if (src.lines.size() != tgt.lines.size()) {
        size_t first_unpaired = std::min(src.lines.size(), tgt.lines.size()) + 1;
        const TextFile& longer = src.lines.size() > tgt.lines.size() ? src : tgt;
        throw std::runtime_error(
            "files dataset: '" + src.path + "' has " + std::to_string(src.lines.size()) +
            " lines but '" + tgt.path + "' has " + std::to_string(tgt.lines.size()) + "; line " +
            std::to_string(first_unpaired) + " of '" + longer.path + "' has no partner");
      }
      size_t kept = 0;
      for (size_t i = 0; i < src.lines.size(); ++i) {
        if (IsBlank(src.lines[i]) || IsBlank(tgt.lines[i])) {
          ++skipped_empty;
          continue;
        }
        const std::string line = ":" + std::to_string(i + 1);
        split_examples[s]->push_back(
            {lang, src.lines[i], tgt.lines[i], src.path + line, tgt.path + line});
        ++kept;
      }
      if (kept == 0) {
        throw std::runtime_error("files dataset: '" + src.path + "' and '" + tgt.path +
                                 "' have no line pair with text on both sides");
      }
      for (const TextFile* file : {&src, &tgt}) {
        file_records.push_back(
            {{"path", file->path}, {"lines", file->lines.size()}, {"sha256", file->sha256}});
      }
    }
  }
  corpus.provenance = {
      {"reader", "files-v1"},  {"dir", dir},
      {"src_lang", src_lang},  {"prefixes", {prefixes.train, prefixes.valid, prefixes.test}},
      {"files", file_records}, {"skipped_empty_pairs", skipped_empty}};
  corpus.content_hash = ComputeCorpusHash(corpus);
  return corpus;
}

}  // namespace moebench
