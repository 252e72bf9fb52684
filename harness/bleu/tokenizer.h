// The BLEU tokenizers of sacreBLEU 2.x, re-implemented rule for rule:
//   13a   mteval-v13a: drop <skipped>, unescape &quot; &amp; &lt; &gt;, pad the line with a space,
//         split off ASCII punctuation and symbols, split '.' and ',' unless both neighbours are
//         digits ("3.5", "1,000" stay whole), split '-' after a digit. The default.
//   intl  mteval-v14 international: split Unicode punctuation (\p{P}) unless it sits between
//         digits, split every Unicode symbol (\p{S}); categories come from ICU's u_charType.
//   zh    every CJK character (sacreBLEU's code-point table, see Note [zh ranges]) becomes its
//         own token, then the 13a punctuation rules (without 13a's unescaping and padding).
//   char  every code point is a token.
//   none  the text unchanged.
//   ja-mecab  MeCab's wakati segmentation with the IPA dictionary (tokenizer_ja_mecab.h).
// Tokenizers do not lower-case or strip; BLEU does that before calling them.
#pragma once

#include <string>
#include <vector>

namespace moebench {

// Tokenizes one line of UTF-8 text; tokens are separated by spaces. Throws std::runtime_error
// for an unknown tokenizer name (the message lists the valid ones) or invalid UTF-8.
std::string Tokenize(const std::string& text, const std::string& tokenizer);

// The valid tokenizer names, in sacreBLEU's order.
const std::vector<std::string>& TokenizerNames();

// Throws std::runtime_error unless `tokenizer` is one of TokenizerNames().
void CheckTokenizerName(const std::string& tokenizer);

// The tokenizer's part of a BLEU signature ("tok:<this>"): its name, except for ja-mecab, whose
// signature is "ja-mecab-<MeCab version>-IPA" like sacreBLEU's (this loads MeCab).
std::string TokenizerSignature(const std::string& tokenizer);

// The tokenizer sacreBLEU prescribes for a target language (its BLEU._TOKENIZER_MAP, applied
// when no -tok is given): "zh" for Chinese, "ja-mecab" for Japanese, "13a" for everything else.
// The language is a code whose primary subtag (before the first '_' or '-', case-insensitive)
// decides: "zh", "zh_CN", "zh-TW" give zh; "ja", "ja_JP" give ja-mecab; "zha", "pt_BR", "de"
// give 13a. sacreBLEU would give Korean ("ko") ko-mecab, which we do not have (it needs the
// mecab-ko dictionary): Korean gets 13a here.
std::string TokenizerForLanguage(const std::string& lang);

}  // namespace moebench
