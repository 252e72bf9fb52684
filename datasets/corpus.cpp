#include "datasets/corpus.h"

#include <cstdio>
#include <map>

#include "harness/util/hash.h"

namespace moebench {
namespace {

void AppendField(const std::string& field, std::string& out) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

void AppendSplit(const char* split_name, const std::vector<ParallelExample>& examples,
                 std::string& out) {
  out += split_name;
  out += ' ';
  out += std::to_string(examples.size());
  out += '\n';
  for (const ParallelExample& example : examples) {
    AppendField(example.lang, out);
    AppendField(example.src, out);
    AppendField(example.tgt, out);
    out += '\n';
  }
}

}  // namespace

std::string ComputeCorpusHash(const ParallelCorpus& corpus) {
  std::string canonical = "moebench-corpus-v1\n";
  AppendSplit("train", corpus.train, canonical);
  AppendSplit("valid", corpus.valid, canonical);
  AppendSplit("test", corpus.test, canonical);
  return Sha256Hex(canonical);
}

std::string FormatCorpusSizes(const ParallelCorpus& corpus) {
  std::map<std::string, int64_t[3]> counts;
  const std::vector<ParallelExample>* splits[3] = {&corpus.train, &corpus.valid, &corpus.test};
  for (int s = 0; s < 3; ++s) {
    for (const ParallelExample& example : *splits[s]) ++counts[example.lang][s];
  }
  std::vector<std::string> order = corpus.langs;
  for (const auto& entry : counts) {
    bool listed = false;
    for (const std::string& lang : corpus.langs) listed = listed || lang == entry.first;
    if (!listed) order.push_back(entry.first);
  }
  std::string out;
  char line[160];
  std::snprintf(line, sizeof(line), "%-8s %8s %8s %8s\n", "lang", "train", "valid", "test");
  out += line;
  int64_t total[3] = {0, 0, 0};
  for (const std::string& lang : order) {
    const int64_t* n = counts[lang];
    std::snprintf(line, sizeof(line), "%-8s %8lld %8lld %8lld\n", lang.c_str(), (long long)n[0],
                  (long long)n[1], (long long)n[2]);
    out += line;
    for (int s = 0; s < 3; ++s) total[s] += n[s];
  }
  std::snprintf(line, sizeof(line), "%-8s %8lld %8lld %8lld\n", "total", (long long)total[0],
                (long long)total[1], (long long)total[2]);
  out += line;
  out += "content_hash " + corpus.content_hash + "\n";
  return out;
}

}  // namespace moebench
