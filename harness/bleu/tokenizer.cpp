#include "harness/bleu/tokenizer.h"

#include <unicode/uchar.h>

#include <cctype>
#include <stdexcept>

#include "harness/bleu/tokenizer_ja_mecab.h"
#include "harness/bleu/unicode_text.h"

namespace moebench {

namespace {

// Note [Regex substitution on pairs]
// sacreBLEU's rules are Python re.sub() calls whose patterns match exactly two code points,
// e.g. `([^0-9])([\.,])` -> `\1 \2 `. re.sub scans left to right and, after a match, resumes
// *after* the second code point, so in "a.." only the first '.' is split by that rule. This
// loop reproduces that scan exactly; a naive "look at every adjacent pair" would not.
enum class PairSpacing {
  kAfterEach,   // replacement `\1 \2 `
  kBeforeEach,  // replacement ` \1 \2`
};

using CodePointTest = bool (*)(char32_t);

std::u32string SubstitutePairs(const std::u32string& text, CodePointTest first,
                               CodePointTest second, PairSpacing spacing) {
  std::u32string out;
  out.reserve(text.size() + text.size() / 2);
  size_t i = 0;
  while (i < text.size()) {
    if (i + 1 < text.size() && first(text[i]) && second(text[i + 1])) {
      if (spacing == PairSpacing::kAfterEach) {
        out.push_back(text[i]);
        out.push_back(U' ');
        out.push_back(text[i + 1]);
        out.push_back(U' ');
      } else {
        out.push_back(U' ');
        out.push_back(text[i]);
        out.push_back(U' ');
        out.push_back(text[i + 1]);
      }
      i += 2;
    } else {
      out.push_back(text[i]);
      ++i;
    }
  }
  return out;
}

// Surrounds every code point for which `test` holds with spaces (replacement ` \1 `).
std::u32string PadEach(const std::u32string& text, CodePointTest test) {
  std::u32string out;
  out.reserve(text.size() + text.size() / 2);
  for (char32_t c : text) {
    if (test(c)) {
      out.push_back(U' ');
      out.push_back(c);
      out.push_back(U' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Python's ' '.join(text.split()).
std::string JoinFields(const std::u32string& text) {
  std::string out;
  for (const std::u32string& field : SplitWhitespace(text)) {
    if (!out.empty()) out.push_back(' ');
    out += EncodeUtf8(field);
  }
  return out;
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

// ---- 13a / zh: the mteval-v13a "language-dependent" regular expressions ---------------------

// The character class [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation and symbols except
// ' - . , which the other rules (or nobody) handle.
bool Is13aSplitChar(char32_t c) {
  return (c >= U'{' && c <= U'~') || (c >= U'[' && c <= U'`') || (c >= U' ' && c <= U'&') ||
         (c >= U'(' && c <= U'+') || (c >= U':' && c <= U'@') || c == U'/';
}
bool IsAsciiDigit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool IsNotAsciiDigit(char32_t c) { return !IsAsciiDigit(c); }
bool IsPeriodOrComma(char32_t c) { return c == U'.' || c == U','; }
bool IsDash(char32_t c) { return c == U'-'; }

// sacreBLEU's TokenizerRegexp, shared by 13a and zh.
std::string ApplyRegexpRules(const std::u32string& text) {
  std::u32string s = PadEach(text, Is13aSplitChar);
  // Period and comma unless preceded by a digit.
  s = SubstitutePairs(s, IsNotAsciiDigit, IsPeriodOrComma, PairSpacing::kAfterEach);
  // Period and comma unless followed by a digit.
  s = SubstitutePairs(s, IsPeriodOrComma, IsNotAsciiDigit, PairSpacing::kBeforeEach);
  // Dash when preceded by a digit.
  s = SubstitutePairs(s, IsAsciiDigit, IsDash, PairSpacing::kAfterEach);
  return JoinFields(s);
}

std::string Tokenize13a(const std::string& line) {
  std::string s = ReplaceAll(line, "<skipped>", "");
  s = ReplaceAll(s, "-\n", "");
  s = ReplaceAll(s, "\n", " ");
  // The order matters and matches sacreBLEU: "&amp;quot;" becomes "&quot;", not '"'.
  s = ReplaceAll(s, "&quot;", "\"");
  s = ReplaceAll(s, "&amp;", "&");
  s = ReplaceAll(s, "&lt;", "<");
  s = ReplaceAll(s, "&gt;", ">");
  // The padding lets "Year 2020." split its final period: `([\.,])([^0-9])` needs a follower.
  return ApplyRegexpRules(DecodeUtf8(" " + s + " "));
}

// ---- intl: mteval-v14 international ----------------------------------------------------------

bool IsUnicodeNumber(char32_t c) {  // \p{N}
  const int8_t type = u_charType(static_cast<UChar32>(c));
  return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}
bool IsNotUnicodeNumber(char32_t c) { return !IsUnicodeNumber(c); }  // \P{N}
bool IsUnicodePunctuation(char32_t c) {                              // \p{P}
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_CONNECTOR_PUNCTUATION:
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      return true;
    default:
      return false;
  }
}
bool IsUnicodeSymbol(char32_t c) {  // \p{S}
  switch (u_charType(static_cast<UChar32>(c))) {
    case U_MATH_SYMBOL:
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
      return true;
    default:
      return false;
  }
}

std::string TokenizeIntl(const std::string& line) {
  // No padding here (unlike 13a), so a sentence-final "2020." keeps its period, exactly as
  // mteval-v14.pl and sacreBLEU do.
  std::u32string s = DecodeUtf8(line);
  s = SubstitutePairs(s, IsNotUnicodeNumber, IsUnicodePunctuation, PairSpacing::kAfterEach);
  s = SubstitutePairs(s, IsUnicodePunctuation, IsNotUnicodeNumber, PairSpacing::kBeforeEach);
  s = PadEach(s, IsUnicodeSymbol);
  return JoinFields(s);
}

// ---- zh -----------------------------------------------------------------------------------------

// Note [zh ranges]
// sacreBLEU's table writes two ranges as '\u20000'..'\u2a6d6' and '\u2f800'..'\u2fa1d'. Python
// reads '\u20000' as U+2000 followed by '0', so for a single code point c the test
// '\u20000' <= c <= '\u2a6d6' holds exactly for U+2001..U+2A6D (general punctuation, arrows,
// maths, ...), and the second one for U+2F81..U+2FA1; CJK Extension B (U+20000..) is never
// matched. We reproduce what sacreBLEU computes, not what its comments intend.
struct CodePointRange {
  char32_t first;
  char32_t last;
};
constexpr CodePointRange kChineseRanges[] = {
    {0x3400, 0x4DB5}, {0x4E00, 0x9FA5}, {0x9FA6, 0x9FBB}, {0xF900, 0xFA2D}, {0xFA30, 0xFA6A},
    {0xFA70, 0xFAD9}, {0x2001, 0x2A6D}, {0x2F81, 0x2FA1}, {0xFF00, 0xFFEF}, {0x2E80, 0x2EFF},
    {0x3000, 0x303F}, {0x31C0, 0x31EF}, {0x2F00, 0x2FDF}, {0x2FF0, 0x2FFF}, {0x3100, 0x312F},
    {0x31A0, 0x31BF}, {0xFE10, 0xFE1F}, {0xFE30, 0xFE4F}, {0x2600, 0x26FF}, {0x2700, 0x27BF},
    {0x3200, 0x32FF}, {0x3300, 0x33FF},
};

bool IsChineseChar(char32_t c) {
  for (const CodePointRange& range : kChineseRanges) {
    if (c >= range.first && c <= range.last) return true;
  }
  return false;
}

std::string TokenizeZh(const std::string& line) {
  const std::u32string stripped = StripWhitespace(DecodeUtf8(line));
  return ApplyRegexpRules(PadEach(stripped, IsChineseChar));
}

// ---- char ---------------------------------------------------------------------------------------

std::string TokenizeChar(const std::string& line) {
  // Python's " ".join(line): a space between every two code points, spaces included.
  const std::u32string decoded = DecodeUtf8(line);
  std::u32string out;
  out.reserve(decoded.size() * 2);
  for (size_t i = 0; i < decoded.size(); ++i) {
    if (i > 0) out.push_back(U' ');
    out.push_back(decoded[i]);
  }
  return EncodeUtf8(out);
}

}  // namespace

const std::vector<std::string>& TokenizerNames() {
  static const std::vector<std::string> names = {"none", "zh", "13a", "char", "intl", "ja-mecab"};
  return names;
}

void CheckTokenizerName(const std::string& tokenizer) {
  for (const std::string& name : TokenizerNames()) {
    if (name == tokenizer) return;
  }
  std::string valid;
  for (const std::string& name : TokenizerNames()) valid += (valid.empty() ? "" : ", ") + name;
  throw std::runtime_error("unknown BLEU tokenizer '" + tokenizer + "' (valid: " + valid + ")");
}

std::string Tokenize(const std::string& text, const std::string& tokenizer) {
  if (tokenizer == "13a") return Tokenize13a(text);
  if (tokenizer == "intl") return TokenizeIntl(text);
  if (tokenizer == "zh") return TokenizeZh(text);
  if (tokenizer == "char") return TokenizeChar(text);
  if (tokenizer == "none") return text;
  if (tokenizer == "ja-mecab") return TokenizeJaMecab(text);
  CheckTokenizerName(tokenizer);
  return text;  // unreachable: CheckTokenizerName throws
}

std::string TokenizerSignature(const std::string& tokenizer) {
  CheckTokenizerName(tokenizer);
  if (tokenizer == "ja-mecab") return JaMecabSignature();
  return tokenizer;
}

std::string TokenizerForLanguage(const std::string& lang) {
  std::string primary = lang.substr(0, lang.find_first_of("_-"));
  for (char& c : primary) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (primary == "zh") return "zh";
  if (primary == "ja") return "ja-mecab";
  return "13a";
}

}  // namespace moebench
