#include "harness/bleu/tokenizer_ja_mecab.h"

#include <mecab.h>

#include <cctype>
#include <memory>
#include <stdexcept>

#include "harness/bleu/unicode_text.h"

namespace moebench {

namespace {

// sacreBLEU's TokenizerJaMecab asserts this size for the `ipadic` package's dictionary.
constexpr unsigned kIpadicEntries = 392126;
// Debian's mecab-ipadic adds 令和 (see Note [ja-mecab dictionary]).
constexpr unsigned kDebianIpadicEntries = 392127;

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string MecabError(const char* what) {
  const char* detail = mecab_strerror(nullptr);
  return std::string("ja-mecab tokenizer: ") + what +
         (detail != nullptr && *detail != '\0' ? std::string(": ") + detail : std::string()) +
         " (it needs libmecab2 and mecab-ipadic-utf8: see scripts/setup.sh)";
}

// Loads the model once and checks its dictionary; never freed (Note [ja-mecab threads]).
mecab_model_t* Model() {
  static mecab_model_t* const model = [] {
    // The same arguments as sacreBLEU's tagger, minus its -d/-r: the dictionary comes from
    // the resource file, as for the `mecab` command.
    mecab_model_t* m = mecab_model_new2("-Owakati");
    if (m == nullptr) throw std::runtime_error(MecabError("cannot load MeCab"));
    const mecab_dictionary_info_t* info = mecab_model_dictionary_info(m);
    std::string problem;
    if (info == nullptr) {
      problem = "MeCab loaded no dictionary";
    } else if (info->next != nullptr) {
      problem = std::string("a user dictionary is loaded besides '") + info->filename + "'";
    } else if (info->type != MECAB_SYS_DIC) {
      problem = std::string("'") + info->filename + "' is not a system dictionary";
    } else if (Lower(info->charset) != "utf-8" && Lower(info->charset) != "utf8") {
      problem = std::string("the dictionary '") + info->filename + "' is in " + info->charset +
                ", not UTF-8 (install mecab-ipadic-utf8)";
    } else if (info->size != kIpadicEntries && info->size != kDebianIpadicEntries) {
      problem = std::string("the dictionary '") + info->filename + "' has " +
                std::to_string(info->size) + " entries, not the IPA dictionary's " +
                std::to_string(kIpadicEntries) + " (or Debian's " +
                std::to_string(kDebianIpadicEntries) + ")";
    }
    if (!problem.empty()) {
      mecab_model_destroy(m);
      throw std::runtime_error("ja-mecab tokenizer: " + problem +
                               "; the dictionary comes from the MeCab resource file "
                               "(/etc/mecabrc, or $MECABRC)");
    }
    return m;
  }();
  return model;
}

// One tagger and lattice per thread (Note [ja-mecab threads]).
class ThreadTagger {
 public:
  ThreadTagger()
      : tagger_(mecab_model_new_tagger(Model()), mecab_destroy),
        lattice_(mecab_model_new_lattice(Model()), mecab_lattice_destroy) {
    if (tagger_ == nullptr || lattice_ == nullptr) {
      throw std::runtime_error(MecabError("cannot create a MeCab tagger"));
    }
  }

  std::string Parse(const std::string& text) {
    mecab_lattice_set_sentence2(lattice_.get(), text.data(), text.size());
    if (mecab_parse_lattice(tagger_.get(), lattice_.get()) == 0) {
      throw std::runtime_error(std::string("ja-mecab tokenizer: MeCab failed on '") + text +
                               "': " + mecab_lattice_strerror(lattice_.get()));
    }
    const char* out = mecab_lattice_tostr(lattice_.get());
    if (out == nullptr) {
      throw std::runtime_error(std::string("ja-mecab tokenizer: MeCab printed nothing for '") +
                               text + "': " + mecab_lattice_strerror(lattice_.get()));
    }
    return out;
  }

 private:
  std::unique_ptr<mecab_t, void (*)(mecab_t*)> tagger_;
  std::unique_ptr<mecab_lattice_t, void (*)(mecab_lattice_t*)> lattice_;
};

ThreadTagger& Tagger() {
  thread_local ThreadTagger tagger;
  return tagger;
}

}  // namespace

std::string TokenizeJaMecab(const std::string& line) {
  // sacreBLEU: line.strip(), then tagger.parse(line).strip() (Python's Unicode whitespace).
  const std::string stripped = EncodeUtf8(StripWhitespace(DecodeUtf8(line)));
  return EncodeUtf8(StripWhitespace(DecodeUtf8(Tagger().Parse(stripped))));
}

std::string JaMecabSignature() {
  Model();
  return std::string("ja-mecab-") + mecab_version() + "-IPA";
}

}  // namespace moebench
