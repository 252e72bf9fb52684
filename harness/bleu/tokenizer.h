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

}  // namespace moebench
