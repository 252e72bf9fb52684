// The subword vocabulary: a SentencePiece unigram model trained once per corpus on the train
// split (source and target lines) and cached by content hash, with one user-defined piece
// "<2xx>" per corpus language (the target-language tag).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "datasets/corpus.h"
#include "datasets/spm_api.h"

namespace moebench {

struct VocabOptions {
  int vocab_size = 1000;
  std::string cache_dir;       // empty -> $MOEBENCH_CACHE, or <cwd>/data-cache when that is unset
  int max_sentences = 200000;  // training lines, subsampled deterministically beyond this
};

class Vocab {
 public:
  // Loads cache_dir/spm-<hash>.model, where <hash> covers corpus.content_hash, the language
  // tags and the options; trains and writes it first when absent. Two processes building the
  // same model at once are safe: each writes a temporary file and renames it into place.
  static Vocab BuildOrLoad(const ParallelCorpus& corpus, const VocabOptions& opt);
  // Throws std::runtime_error naming the path when it is missing or not a SentencePiece model.
  static Vocab Load(const std::string& model_path);

  std::vector<int> Encode(const std::string& text) const;
  // Skips pad, bos and eos; throws std::runtime_error naming an id outside [0, size()).
  std::string Decode(const std::vector<int>& ids) const;

  int size() const;
  int pad_id() const { return 0; }
  int unk_id() const { return 1; }
  int bos_id() const { return 2; }
  int eos_id() const { return 3; }
  // The id of the piece "<2lang>"; throws std::runtime_error naming the language if absent.
  int LangTagId(const std::string& lang) const;

  const std::string& model_path() const { return model_path_; }
  const std::string& model_hash() const { return model_hash_; }  // Sha256Hex of the file

 private:
  Vocab() = default;  // only BuildOrLoad and Load make one, so a Vocab always has a model

  // Shared so a Vocab is cheap to copy; the processor is never modified after loading.
  std::shared_ptr<const SpmProcessor> processor_;
  std::string model_path_;
  std::string model_hash_;
};

// "<2" + lang + ">": the piece that tells the decoder which language to produce.
std::string LangTagPiece(const std::string& lang);

}  // namespace moebench
