// The parallel corpus every dataset reader produces: English (or synthetic) source sentences
// paired with translations into several languages, already split into train/valid/test.
// datasets/ depends only on harness/util (hashing) and third-party libraries, never on torch.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moebench {

struct ParallelExample {
  std::string lang;  // target language code, e.g. "de" or "xa"
  std::string src;   // English (or synthetic source) sentence
  std::string tgt;   // its translation into `lang`
  // Where the two sides were read, as "file:line" (the files dataset; "" for generated data),
  // for messages about one sentence. Not part of the corpus hash.
  std::string src_at = {}, tgt_at = {};  // defaulted: {lang, src, tgt} initialises the rest
};

struct ParallelCorpus {
  std::string name;  // "synthetic", "l10n", "files"
  std::vector<std::string> langs;
  std::vector<ParallelExample> train, valid, test;
  std::string content_hash;   // ComputeCorpusHash(*this)
  nlohmann::json provenance;  // generator options / package names+versions / file paths
};

// Sha256Hex over a canonical serialisation of the three splits (in order train, valid, test;
// examples in stored order; each field length-prefixed so no text can imitate a separator).
// Name, langs and provenance are not hashed: two recipes that yield the same text share a hash.
std::string ComputeCorpusHash(const ParallelCorpus& corpus);

// Examples per language and split as a text table, for `moebench data prepare` and logs:
//   lang      train  valid   test
//   de        17748    945   1009
//   total     ...
//   content_hash <hex>
// Languages in corpus.langs order (then any others found, sorted).
std::string FormatCorpusSizes(const ParallelCorpus& corpus);

}  // namespace moebench
