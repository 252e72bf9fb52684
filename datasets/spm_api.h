// SentencePiece through libmoebench_spm.so, loaded at run time. See Note [SentencePiece
// isolation] in datasets/spm_shim/spm_shim.cpp.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moebench {

class SpmProcessor {
 public:
  // Throws std::runtime_error with SentencePiece's message if the bytes are not a model.
  explicit SpmProcessor(const std::string& model_bytes);
  ~SpmProcessor();
  SpmProcessor(const SpmProcessor&) = delete;
  SpmProcessor& operator=(const SpmProcessor&) = delete;

  std::vector<int> Encode(const std::string& text) const;
  std::string Decode(const std::vector<int>& ids) const;
  int GetPieceSize() const;
  int pad_id() const;
  int unk_id() const;
  int bos_id() const;
  int eos_id() const;
  int PieceToId(const std::string& piece) const;
  std::string IdToPiece(int id) const;

 private:
  void* handle_ = nullptr;
};

// Trains a model from in-memory lines; returns the serialized model.
std::string SpmTrain(const std::map<std::string, std::string>& args,
                     const std::vector<std::string>& lines);

// Where the shim is looked for: $MOEBENCH_SPM_SHIM, next to the executable, then the build
// folder it was compiled into.
std::string SpmShimPath();

}  // namespace moebench
