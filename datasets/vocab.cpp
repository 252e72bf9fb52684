#include "datasets/vocab.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "datasets/cache_dir.h"
#include "datasets/prng.h"
#include "datasets/spm_api.h"
#include "harness/util/hash.h"

namespace moebench {
namespace {

// Bump when the training recipe changes, so old cached models are not reused.
constexpr const char* kRecipeVersion = "spm-unigram-v2";
constexpr size_t kCacheKeyHexChars = 24;
constexpr uint64_t kSubsampleSeed = 0x5b5b;

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("vocab: cannot open model file '" + path + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void WriteFileAtomically(const std::string& path, const std::string& bytes) {
  // A name unique to this process and call; rename() within one directory is atomic on POSIX,
  // so a concurrent reader sees either no file or a whole one.
  static uint64_t counter = 0;
  std::string temp_path =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++counter);
  {
    std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::filesystem::remove(temp_path);
      throw std::runtime_error("vocab: cannot write '" + temp_path + "'");
    }
  }
  std::error_code error;
  std::filesystem::rename(temp_path, path, error);
  if (error) {
    std::filesystem::remove(temp_path);
    throw std::runtime_error("vocab: cannot rename '" + temp_path + "' to '" + path +
                             "': " + error.message());
  }
}

void CheckLangForTag(const std::string& lang) {
  if (lang.empty()) throw std::runtime_error("vocab: corpus has an empty language name");
  for (char c : lang) {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '>' || c == '<') {
      throw std::runtime_error("vocab: language name '" + lang +
                               "' cannot be made a tag (no ',', '<', '>' or whitespace)");
    }
  }
}

// The distinct source and target lines of the train split, in first-seen order, subsampled
// deterministically to at most max_sentences.
std::vector<std::string> TrainingLines(const ParallelCorpus& corpus, int max_sentences) {
  std::vector<std::string> lines;
  std::unordered_set<std::string> seen;
  for (const ParallelExample& example : corpus.train) {
    if (seen.insert(example.src).second) lines.push_back(example.src);
    if (seen.insert(example.tgt).second) lines.push_back(example.tgt);
  }
  if (static_cast<int64_t>(lines.size()) > max_sentences) {
    SplitMix64 rng(kSubsampleSeed);
    rng.Shuffle(lines);
    lines.resize(max_sentences);
  }
  return lines;
}

std::string TrainModel(const ParallelCorpus& corpus, const VocabOptions& opt) {
  std::vector<std::string> lines = TrainingLines(corpus, opt.max_sentences);
  if (lines.empty()) {
    throw std::runtime_error("vocab: corpus '" + corpus.name +
                             "' has an empty train split; nothing to train on");
  }
  std::string tags;
  for (const std::string& lang : corpus.langs) {
    if (!tags.empty()) tags += ',';
    tags += LangTagPiece(lang);
  }
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(opt.vocab_size)},
      // Small corpora may not support vocab_size pieces; take what they give.
      {"hard_vocab_limit", "false"},
      {"pad_id", "0"},
      {"unk_id", "1"},
      {"bos_id", "2"},
      {"eos_id", "3"},
      {"user_defined_symbols", tags},
      {"character_coverage", "1.0"},
      // No NFKC: it maps "，" to "," and "…" to "...", so Decode(Encode(x)) != x and hypotheses
      // would be scored against references in a different form.
      {"normalization_rule_name", "identity"},
      // We subsample ourselves (deterministically); SentencePiece's own sampling is seeded
      // from std::random_device.
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      // One thread keeps the EM sums in one order, so a corpus always yields the same model.
      {"num_threads", "1"},
      {"minloglevel", "2"},
  };
  try {
    return SpmTrain(std::map<std::string, std::string>(args.begin(), args.end()), lines);
  } catch (const std::exception& e) {
    throw std::runtime_error("vocab: SentencePiece training on corpus '" + corpus.name +
                             "' (vocab_size=" + std::to_string(opt.vocab_size) +
                             ") failed: " + e.what());
  }
}

}  // namespace

std::string LangTagPiece(const std::string& lang) { return "<2" + lang + ">"; }

Vocab Vocab::BuildOrLoad(const ParallelCorpus& corpus, const VocabOptions& opt) {
  if (opt.vocab_size < 8) {
    throw std::runtime_error("vocab: vocab_size must be >= 8, got " +
                             std::to_string(opt.vocab_size));
  }
  if (opt.max_sentences < 1) {
    throw std::runtime_error("vocab: max_sentences must be >= 1, got " +
                             std::to_string(opt.max_sentences));
  }
  for (const std::string& lang : corpus.langs) CheckLangForTag(lang);
  std::string content_hash =
      corpus.content_hash.empty() ? ComputeCorpusHash(corpus) : corpus.content_hash;
  nlohmann::json key = {{"recipe", kRecipeVersion},
                        {"corpus", content_hash},
                        {"langs", corpus.langs},
                        {"vocab_size", opt.vocab_size},
                        {"max_sentences", opt.max_sentences}};
  std::string cache_key = Sha256Hex(key.dump()).substr(0, kCacheKeyHexChars);
  std::filesystem::path dir = ResolveDataCacheDir(opt.cache_dir);
  std::filesystem::path model_path = dir / ("spm-" + cache_key + ".model");
  if (std::filesystem::exists(model_path)) return Load(model_path.string());

  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    throw std::runtime_error("vocab: cannot create cache directory '" + dir.string() +
                             "': " + error.message());
  }
  WriteFileAtomically(model_path.string(), TrainModel(corpus, opt));
  return Load(model_path.string());
}

Vocab Vocab::Load(const std::string& model_path) {
  std::string bytes = ReadFileBytes(model_path);
  std::shared_ptr<SpmProcessor> processor;
  try {
    processor = std::make_shared<SpmProcessor>(bytes);
  } catch (const std::exception& e) {
    throw std::runtime_error("vocab: '" + model_path +
                             "' is not a SentencePiece model: " + e.what());
  }
  if (processor->pad_id() != 0 || processor->unk_id() != 1 || processor->bos_id() != 2 ||
      processor->eos_id() != 3) {
    throw std::runtime_error(
        "vocab: '" + model_path + "' does not use pad=0 unk=1 bos=2 eos=3 (has pad=" +
        std::to_string(processor->pad_id()) + " unk=" + std::to_string(processor->unk_id()) +
        " bos=" + std::to_string(processor->bos_id()) +
        " eos=" + std::to_string(processor->eos_id()) + ")");
  }
  Vocab vocab;
  vocab.processor_ = std::move(processor);
  vocab.model_path_ = model_path;
  vocab.model_hash_ = Sha256Hex(bytes);
  return vocab;
}

std::vector<int> Vocab::Encode(const std::string& text) const { return processor_->Encode(text); }

std::string Vocab::Decode(const std::vector<int>& ids) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  for (int id : ids) {
    if (id < 0 || id >= size()) {
      throw std::runtime_error("vocab: token id " + std::to_string(id) + " outside [0, " +
                               std::to_string(size()) + ") of '" + model_path_ + "'");
    }
    if (id == pad_id() || id == bos_id() || id == eos_id()) continue;
    kept.push_back(id);
  }
  return processor_->Decode(kept);
}

int Vocab::size() const { return processor_->GetPieceSize(); }

int Vocab::LangTagId(const std::string& lang) const {
  std::string piece = LangTagPiece(lang);
  int id = processor_->PieceToId(piece);
  if (id == unk_id() || processor_->IdToPiece(id) != piece) {
    throw std::runtime_error("vocab: no language tag for language '" + lang + "' (piece '" + piece +
                             "') in '" + model_path_ + "'");
  }
  return id;
}

}  // namespace moebench
