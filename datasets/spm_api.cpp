#include "datasets/spm_api.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "harness/util/process.h"

#ifndef MOEBENCH_SPM_SHIM_BUILD_PATH
#define MOEBENCH_SPM_SHIM_BUILD_PATH ""
#endif

namespace moebench {

namespace {

constexpr const char* kShimName = "libmoebench_spm.so";

struct ShimApi {
  int (*train)(const char* const*, const char* const*, size_t, const char* const*, const size_t*,
               size_t, char**, size_t*, char**);
  void* (*load)(const char*, size_t, char**);
  void (*unload)(void*);
  int (*encode)(void*, const char*, size_t, int**, size_t*, char**);
  int (*decode)(void*, const int*, size_t, char**, size_t*, char**);
  int (*info)(void*, int);
  int (*piece_to_id)(void*, const char*);
  char* (*id_to_piece)(void*, int);
  void (*free_fn)(void*);
};

template <typename F>
void Bind(void* lib, const char* name, F& f, const std::string& path) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) throw std::runtime_error("SentencePiece shim " + path + " lacks symbol " + name);
}

const ShimApi& Api() {
  static std::once_flag once;
  static ShimApi api;
  static std::string error;
  std::call_once(once, [] {
    const std::string path = SpmShimPath();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
      error = std::string("cannot load the SentencePiece shim (") + dlerror() +
              "); build the moebench_spm target or set MOEBENCH_SPM_SHIM";
      return;
    }
    try {
      Bind(lib, "moebench_spm_train", api.train, path);
      Bind(lib, "moebench_spm_load", api.load, path);
      Bind(lib, "moebench_spm_unload", api.unload, path);
      Bind(lib, "moebench_spm_encode", api.encode, path);
      Bind(lib, "moebench_spm_decode", api.decode, path);
      Bind(lib, "moebench_spm_info", api.info, path);
      Bind(lib, "moebench_spm_piece_to_id", api.piece_to_id, path);
      Bind(lib, "moebench_spm_id_to_piece", api.id_to_piece, path);
      Bind(lib, "moebench_spm_free", api.free_fn, path);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  if (!error.empty()) throw std::runtime_error(error);
  return api;
}

[[noreturn]] void Fail(const char* what, char* err) {
  std::string msg = std::string(what) + ": " + (err ? err : "unknown error");
  if (err) Api().free_fn(err);
  throw std::runtime_error(msg);
}

}  // namespace

std::string SpmShimPath() {
  if (const char* env = std::getenv("MOEBENCH_SPM_SHIM"); env && *env) return env;
  const std::string exe = OwnExecutablePath();
  if (!exe.empty()) {
    const auto next_to_exe = std::filesystem::path(exe).parent_path() / kShimName;
    if (std::filesystem::exists(next_to_exe)) return next_to_exe.string();
  }
  return MOEBENCH_SPM_SHIM_BUILD_PATH;
}

SpmProcessor::SpmProcessor(const std::string& model_bytes) {
  char* err = nullptr;
  handle_ = Api().load(model_bytes.data(), model_bytes.size(), &err);
  if (!handle_) Fail("SentencePiece cannot load the model", err);
}

SpmProcessor::~SpmProcessor() {
  if (handle_) Api().unload(handle_);
}

std::vector<int> SpmProcessor::Encode(const std::string& text) const {
  int* ids = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (Api().encode(handle_, text.data(), text.size(), &ids, &n, &err) != 0) {
    Fail("SentencePiece cannot encode", err);
  }
  std::vector<int> out(ids, ids + n);
  Api().free_fn(ids);
  return out;
}

std::string SpmProcessor::Decode(const std::vector<int>& ids) const {
  char* text = nullptr;
  size_t len = 0;
  char* err = nullptr;
  if (Api().decode(handle_, ids.data(), ids.size(), &text, &len, &err) != 0) {
    Fail("SentencePiece cannot decode", err);
  }
  std::string out(text, len);
  Api().free_fn(text);
  return out;
}

int SpmProcessor::GetPieceSize() const { return Api().info(handle_, 0); }
int SpmProcessor::pad_id() const { return Api().info(handle_, 1); }
int SpmProcessor::unk_id() const { return Api().info(handle_, 2); }
int SpmProcessor::bos_id() const { return Api().info(handle_, 3); }
int SpmProcessor::eos_id() const { return Api().info(handle_, 4); }
int SpmProcessor::PieceToId(const std::string& piece) const {
  return Api().piece_to_id(handle_, piece.c_str());
}
std::string SpmProcessor::IdToPiece(int id) const {
  char* p = Api().id_to_piece(handle_, id);
  std::string out(p);
  Api().free_fn(p);
  return out;
}

std::string SpmTrain(const std::map<std::string, std::string>& args,
                     const std::vector<std::string>& lines) {
  std::vector<const char*> keys, values, ptrs;
  std::vector<size_t> lens;
  for (const auto& [k, v] : args) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  for (const auto& l : lines) {
    ptrs.push_back(l.data());
    lens.push_back(l.size());
  }
  char* model = nullptr;
  size_t model_len = 0;
  char* err = nullptr;
  if (Api().train(keys.data(), values.data(), keys.size(), ptrs.data(), lens.data(), lines.size(),
                  &model, &model_len, &err) != 0) {
    Fail("SentencePiece training failed", err);
  }
  std::string out(model, model_len);
  Api().free_fn(model);
  return out;
}

}  // namespace moebench
