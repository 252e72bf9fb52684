// sacreBLEU's `ja-mecab` tokenizer (TokenizerJaMecab): the line is stripped, segmented by MeCab
// with the IPA dictionary in wakati mode (-Owakati: the surface forms separated by spaces) and
// the result stripped again. We call libmecab (Debian's libmecab2 / libmecab-dev) with the
// dictionary that the MeCab resource file names (/etc/mecabrc, or $MECABRC): on Debian that is
// mecab-ipadic-utf8. The output equals `mecab -Owakati` on the same machine.
//
// Note [ja-mecab dictionary]
// sacreBLEU loads the `ipadic` Python package and asserts that the dictionary has 392126 entries
// and no user dictionary. Debian's mecab-ipadic (2.7.0-20070801+main-2.1 and later) adds one
// entry, the era name 令和 (Reiwa), and has 392127; we accept both and refuse anything else (an
// EUC-JP dictionary, UniDic, a user dictionary). So a text containing 令和 may be segmented
// differently from sacreBLEU's; nothing else is. The signature is sacreBLEU's:
// "ja-mecab-<MeCab version>-IPA", with the version libmecab reports at run time.
//
// Note [ja-mecab threads]
// The MeCab model (the dictionary, about 50 MB) is loaded once per process, on first use, and
// never freed. A MeCab tagger and lattice must not be used by two threads at once, so each
// thread gets its own pair, made from the shared model (MeCab's Model is thread-safe): the
// functions here can be called from any number of threads.
#pragma once

#include <string>

namespace moebench {

// Tokenizes one line of UTF-8 text. Throws std::runtime_error when MeCab or its IPA dictionary
// cannot be loaded, or when MeCab fails on the line.
std::string TokenizeJaMecab(const std::string& line);

// "ja-mecab-0.996-IPA". Loads MeCab (and throws like TokenizeJaMecab) so that a signature is
// only ever written for a tokenizer that works.
std::string JaMecabSignature();

}  // namespace moebench
