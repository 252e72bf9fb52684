// A C interface to SentencePiece, built as its own shared library (libmoebench_spm.so).
// Note [SentencePiece isolation]: Debian's libsentencepiece embeds and exports its own copy of
// protobuf, which clashes with the libprotobuf that LibTorch loads: linking both into one
// process crashes in protobuf's static initialisers. So no torch process links SentencePiece;
// datasets/spm_api.cpp loads this shim with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), which keeps
// SentencePiece's protobuf private to it.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

char* CopyString(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

class LinesIterator : public sentencepiece::SentenceIterator {
 public:
  LinesIterator(const char* const* lines, const size_t* lens, size_t n)
      : lines_(lines), lens_(lens), n_(n) {
    Load();
  }
  bool done() const override { return index_ >= n_; }
  void Next() override {
    ++index_;
    Load();
  }
  const std::string& value() const override { return current_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  void Load() {
    if (index_ < n_) current_.assign(lines_[index_], lens_[index_]);
  }
  const char* const* lines_;
  const size_t* lens_;
  size_t n_;
  size_t index_ = 0;
  std::string current_;
};

}  // namespace

extern "C" {

int moebench_spm_train(const char* const* keys, const char* const* values, size_t n_args,
                       const char* const* lines, const size_t* line_lens, size_t n_lines,
                       char** model, size_t* model_len, char** err) {
  std::unordered_map<std::string, std::string> args;
  for (size_t i = 0; i < n_args; ++i) args[keys[i]] = values[i];
  LinesIterator it(lines, line_lens, n_lines);
  std::string bytes;
  auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &bytes);
  if (!status.ok()) {
    *err = CopyString(status.ToString());
    return 1;
  }
  *model = static_cast<char*>(std::malloc(bytes.size()));
  std::memcpy(*model, bytes.data(), bytes.size());
  *model_len = bytes.size();
  return 0;
}

void* moebench_spm_load(const char* bytes, size_t len, char** err) {
  auto* p = new sentencepiece::SentencePieceProcessor();
  auto status = p->LoadFromSerializedProto(std::string(bytes, len));
  if (!status.ok()) {
    *err = CopyString(status.ToString());
    delete p;
    return nullptr;
  }
  return p;
}

void moebench_spm_unload(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

int moebench_spm_encode(void* handle, const char* text, size_t len, int** ids, size_t* n,
                        char** err) {
  std::vector<int> out;
  auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(
      std::string(text, len), &out);
  if (!status.ok()) {
    *err = CopyString(status.ToString());
    return 1;
  }
  *n = out.size();
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  if (!out.empty()) std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return 0;
}

int moebench_spm_decode(void* handle, const int* ids, size_t n, char** text, size_t* len,
                        char** err) {
  std::string out;
  auto status = static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Decode(
      std::vector<int>(ids, ids + n), &out);
  if (!status.ok()) {
    *err = CopyString(status.ToString());
    return 1;
  }
  *len = out.size();
  *text = CopyString(out);
  return 0;
}

// special: 0 size, 1 pad, 2 unk, 3 bos, 4 eos
int moebench_spm_info(void* handle, int what) {
  auto* p = static_cast<sentencepiece::SentencePieceProcessor*>(handle);
  switch (what) {
    case 0:
      return p->GetPieceSize();
    case 1:
      return p->pad_id();
    case 2:
      return p->unk_id();
    case 3:
      return p->bos_id();
    case 4:
      return p->eos_id();
    default:
      return -1;
  }
}

int moebench_spm_piece_to_id(void* handle, const char* piece) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->PieceToId(piece);
}

char* moebench_spm_id_to_piece(void* handle, int id) {
  return CopyString(static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IdToPiece(id));
}

void moebench_spm_free(void* p) { std::free(p); }

}  // extern "C"
