#include "datasets/l10n_clean.h"

#include <cctype>
#include <cstring>
#include <initializer_list>

#include "harness/util/utf8.h"

namespace moebench {
namespace {

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiAlnum(char c) { return IsAsciiDigit(c) || IsAsciiAlpha(c); }
bool IsIdentifierChar(char c) { return IsAsciiAlnum(c) || c == '_'; }
bool IsUpperOrDigit(char c) { return IsAsciiDigit(c) || (c >= 'A' && c <= 'Z'); }
// A byte that can start a letter: ASCII alphanumeric or any non-ASCII lead byte.
bool StartsWordChar(char c) { return IsAsciiAlnum(c) || static_cast<unsigned char>(c) >= 0xC0; }

bool StartsWith(const std::string& text, size_t pos, const char* prefix) {
  return text.compare(pos, std::strlen(prefix), prefix) == 0;
}

// Length of a printf conversion starting at text[pos] == '%' (e.g. "%-5.2lf", "%1$s", "%'d",
// "%zu", "%I64d", "%(name)s"), or 0 when the text there is not one.
size_t PrintfSpecLength(const std::string& text, size_t pos) {
  const size_t n = text.size();
  size_t j = pos + 1;
  if (j < n && text[j] == '(') {  // Python mapping key
    size_t close = j + 1;
    while (close < n && IsIdentifierChar(text[close])) ++close;
    if (close >= n || text[close] != ')' || close == j + 1) return 0;
    j = close + 1;
  } else {
    size_t k = j;
    while (k < n && IsAsciiDigit(text[k])) ++k;
    if (k > j && k < n && text[k] == '$') j = k + 1;  // positional argument
  }
  // Flags; no ' ' flag: "50% done" must stay.
  while (j < n && std::strchr("-+#0'I", text[j]) != nullptr) ++j;
  if (j < n && text[j] == '*') {
    ++j;
  } else {
    while (j < n && IsAsciiDigit(text[j])) ++j;
  }
  if (j < n && text[j] == '.') {
    ++j;
    if (j < n && text[j] == '*') {
      ++j;
    } else {
      while (j < n && IsAsciiDigit(text[j])) ++j;
    }
  }
  for (const char* length : {"hh", "ll", "I64", "I32", "h", "l", "L", "q", "j", "z", "Z", "t"}) {
    if (StartsWith(text, j, length)) {
      j += std::strlen(length);
      break;
    }
  }
  if (j < n && std::strchr("diouxXeEfFgGaAcspnCSm", text[j]) != nullptr && text[j] != '\0') {
    return j + 1 - pos;
  }
  return 0;
}

// Length of a placeholder starting at text[pos], or 0. Handles printf/Python ('%'), Qt ("%1"),
// braces ("{0}", "{name}", "{0:.2f}") and shell ("${var}", "$VAR").
size_t PlaceholderLength(const std::string& text, size_t pos) {
  const size_t n = text.size();
  char c = text[pos];
  if (c == '%') {
    size_t length = PrintfSpecLength(text, pos);
    if (length > 0) return length;
    size_t j = pos + 1;
    // strftime ("%Y", "%b") and aptitude's bold markers ("%B...%b"): '%' right before a letter.
    if (j < n && IsAsciiAlpha(text[j])) return 2;
    while (j < n && IsAsciiDigit(text[j])) ++j;
    return j > pos + 1 ? j - pos : 0;  // Qt "%1"
  }
  if (c == '{') {
    size_t j = pos + 1;
    while (j < n && (IsIdentifierChar(text[j]) || text[j] == '.')) ++j;
    if (j < n && text[j] == ':') {
      while (j < n && text[j] != '}' && text[j] != '{') ++j;
    }
    return (j < n && text[j] == '}') ? j + 1 - pos : 0;
  }
  if (c == '$') {
    if (pos + 1 < n && text[pos + 1] == '{') {
      size_t close = text.find('}', pos + 2);
      return close == std::string::npos ? 0 : close + 1 - pos;
    }
    size_t j = pos + 1;
    if (j < n && (IsAsciiAlpha(text[j]) || text[j] == '_')) {
      while (j < n && IsIdentifierChar(text[j])) ++j;
      return j - pos;
    }
  }
  return 0;
}

// Spaces that may sit inside an emptied pair: ASCII, no-break, narrow no-break, thin.
size_t SpaceLength(const std::string& text, size_t pos) {
  if (text[pos] == ' ') return 1;
  for (const char* space : {"\u00A0", "\u202F", "\u2009"}) {
    if (StartsWith(text, pos, space)) return std::strlen(space);
  }
  return 0;
}

bool RemoveEmptyPairs(std::string& text) {
  static const char* const kPairs[][2] = {
      {"'", "'"},           {"`", "'"},           {"\"", "\""},         {"\u2018", "\u2019"},
      {"\u201C", "\u201D"}, {"\u201E", "\u201C"}, {"\u201A", "\u2018"}, {"\u00AB", "\u00BB"},
      {"\u00BB", "\u00AB"}, {"\u2039", "\u203A"}, {"\u203A", "\u2039"}, {"\u300C", "\u300D"},
      {"\u300E", "\u300F"}, {"(", ")"},           {"[", "]"},           {"\uFF08", "\uFF09"}};
  bool changed_any = false;
  bool changed = true;
  while (changed) {
    changed = false;
    for (const auto& pair : kPairs) {
      size_t open_length = std::strlen(pair[0]);
      size_t pos = text.find(pair[0]);
      while (pos != std::string::npos) {
        size_t j = pos + open_length;
        size_t space = 0;
        while (j < text.size() && (space = SpaceLength(text, j)) > 0) j += space;
        if (StartsWith(text, j, pair[1])) {
          text.erase(pos, j + std::strlen(pair[1]) - pos);
          changed = changed_any = true;
        } else {
          pos += open_length;
        }
        pos = text.find(pair[0], pos);
      }
    }
  }
  return changed_any;
}

std::string TrimDanglingPunctuation(const std::string& text) {
  static const char* const kDangling[] = {" ", ":", ";", ",", "\uFF1A", "\uFF0C", "\u3001"};
  size_t begin = 0;
  size_t end = text.size();
  bool trimmed = true;
  while (trimmed && begin < end) {
    trimmed = false;
    for (const char* p : kDangling) {
      size_t len = std::strlen(p);
      if (end - begin >= len && text.compare(begin, len, p) == 0) {
        begin += len;
        trimmed = true;
      }
      if (end - begin >= len && text.compare(end - len, len, p) == 0) {
        end -= len;
        trimmed = true;
      }
    }
  }
  return text.substr(begin, end - begin);
}

bool IsKnownTag(const std::string& lower_name) {
  static const char* const kTags[] = {
      "a",    "abbr",  "b",    "big",  "body",  "br",    "center", "cite",   "code",   "del",
      "dfn",  "div",   "em",   "font", "h1",    "h2",    "h3",     "h4",     "h5",     "h6",
      "head", "hr",    "html", "i",    "img",   "ins",   "kbd",    "li",     "nobr",   "ol",
      "p",    "pre",   "q",    "s",    "samp",  "small", "span",   "strike", "strong", "sub",
      "sup",  "table", "td",   "th",   "title", "tr",    "tt",     "u",      "ul",     "var"};
  for (const char* tag : kTags) {
    if (lower_name == tag) return true;
  }
  return false;
}

bool IsBlockTag(const std::string& lower_name) {
  static const char* const kBlockTags[] = {"br", "p",  "li", "div", "hr", "tr", "td", "th",
                                           "h1", "h2", "h3", "h4",  "h5", "h6", "ul", "ol"};
  for (const char* tag : kBlockTags) {
    if (lower_name == tag) return true;
  }
  return false;
}

// Length of a known tag at text[pos] == '<', and whether it is block-level; 0 if none.
size_t TagLength(const std::string& text, size_t pos, bool* block) {
  const size_t n = text.size();
  size_t j = pos + 1;
  if (j < n && text[j] == '/') ++j;
  size_t name_start = j;
  while (j < n && IsAsciiAlnum(text[j])) ++j;
  if (j == name_start) return 0;
  std::string name;
  for (size_t k = name_start; k < j; ++k) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(text[k])));
  }
  if (!IsKnownTag(name)) return 0;
  if (j < n && text[j] != '>' && text[j] != '/' && text[j] != ' ') return 0;
  size_t close = text.find_first_of("<>", j);
  if (close == std::string::npos || text[close] != '>') return 0;
  *block = IsBlockTag(name);
  return close + 1 - pos;
}

// Decodes an entity at text[pos] == '&' into *out; returns its length, 0 if none.
size_t EntityLength(const std::string& text, size_t pos, std::string* out) {
  static const char* const kNamed[][2] = {{"&amp;", "&"},   {"&lt;", "<"},   {"&gt;", ">"},
                                          {"&quot;", "\""}, {"&apos;", "'"}, {"&nbsp;", "\u00A0"}};
  for (const auto& entity : kNamed) {
    if (StartsWith(text, pos, entity[0])) {
      *out = entity[1];
      return std::strlen(entity[0]);
    }
  }
  if (!StartsWith(text, pos, "&#")) return 0;
  size_t j = pos + 2;
  bool hex = j < text.size() && (text[j] == 'x' || text[j] == 'X');
  if (hex) ++j;
  uint32_t value = 0;
  size_t digits_start = j;
  while (j < text.size() && j - digits_start < 7) {
    char c = text[j];
    int digit = IsAsciiDigit(c)               ? c - '0'
                : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : -1;
    if (digit < 0) break;
    value = value * (hex ? 16 : 10) + digit;
    ++j;
  }
  if (j == digits_start || j >= text.size() || text[j] != ';') return 0;
  out->clear();
  AppendUtf8(value, *out);
  return j + 1 - pos;
}

// An '&' that starts a character entity rather than marking an accelerator.
bool StartsEntity(const std::string& text, size_t pos) {
  std::string ignored;
  if (EntityLength(text, pos, &ignored) > 0) return true;
  size_t j = pos + 1;
  while (j < text.size() && IsAsciiAlnum(text[j])) ++j;
  return j > pos + 1 && j < text.size() && text[j] == ';';
}

bool IsUnicodeSpace(uint32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' ||
         cp == 0x00A0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool IsInvisible(uint32_t cp) { return cp == 0x200B || cp == 0xFEFF || cp == 0x00AD; }

}  // namespace

std::string StripFormatSpecifiers(const std::string& text) {
  std::string out;
  bool removed = false;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '%' && i + 1 < text.size() && text[i + 1] == '%') {
      out += '%';
      i += 2;
      continue;
    }
    size_t length =
        (text[i] == '%' || text[i] == '{' || text[i] == '$') ? PlaceholderLength(text, i) : 0;
    if (length == 0) {
      out += text[i++];
      continue;
    }
    removed = true;
    i += length;
    // "open %s." -> "open." rather than "open ."
    if (i < text.size() && std::strchr(".,:;!?)", text[i]) != nullptr) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
    }
  }
  if (!removed) return out;  // only "%%" may have changed
  RemoveEmptyPairs(out);
  return TrimDanglingPunctuation(NormalizeWhitespace(out));
}

std::string StripMarkup(const std::string& text) {
  std::string out;
  size_t i = 0;
  // GnuPG's option help: "|FILE|read options from FILE" names the argument between bars, and a
  // leading "@" marks a section heading.
  if (!text.empty() && text[0] == '|') {
    size_t close = text.find('|', 1);
    if (close != std::string::npos && close > 1 && text.find_first_of(" \t", 1) > close) {
      i = close + 1;
    }
  } else if (!text.empty() && text[0] == '@') {
    i = 1;
  }
  while (i < text.size()) {
    if (text[i] == '<') {
      bool block = false;
      size_t length = TagLength(text, i, &block);
      if (length > 0) {
        if (block) out += ' ';
        i += length;
        continue;
      }
    } else if (text[i] == '&') {
      std::string decoded;
      size_t length = EntityLength(text, i, &decoded);
      if (length > 0) {
        out += decoded;
        i += length;
        continue;
      }
    }
    out += text[i++];
  }
  return out;
}

std::string StripAccelerators(const std::string& text) {
  std::string out;
  // CJK-style "(_F)" / "(&F)" / full-width "（_F）" after a label.
  size_t i = 0;
  while (i < text.size()) {
    size_t open = 0;
    if (text[i] == '(') {
      open = 1;
    } else if (StartsWith(text, i, "\uFF08")) {
      open = 3;
    }
    if (open > 0) {
      size_t j = i + open;
      if (j + 1 < text.size() && (text[j] == '_' || text[j] == '&') && IsAsciiAlnum(text[j + 1])) {
        size_t close = j + 2;
        size_t close_length = close >= text.size()                ? 0
                              : text[close] == ')'                ? 1
                              : StartsWith(text, close, "\uFF09") ? 3
                                                                  : 0;
        if (close_length > 0) {
          while (!out.empty() && out.back() == ' ') out.pop_back();
          i = close + close_length;
          continue;
        }
      }
    }
    out += text[i++];
  }

  // One GTK mnemonic underscore.
  size_t underscore = out.find('_');
  if (underscore != std::string::npos && out.find('_', underscore + 1) == std::string::npos &&
      underscore + 1 < out.size() && StartsWordChar(out[underscore + 1])) {
    bool joins_capitals = underscore > 0 && IsUpperOrDigit(out[underscore - 1]) &&
                          IsUpperOrDigit(out[underscore + 1]);
    if (!joins_capitals) out.erase(underscore, 1);
  }

  // One Qt/KDE ampersand. "&&" (shell "and", or Qt's escaped '&') is text, not a marker.
  int single_ampersands = 0;
  size_t accelerator = std::string::npos;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k] != '&') continue;
    if (k + 1 < out.size() && out[k + 1] == '&') {
      ++k;
      continue;
    }
    ++single_ampersands;
    if (k + 1 < out.size() && StartsWordChar(out[k + 1]) && !StartsEntity(out, k)) {
      accelerator = k;
    }
  }
  if (single_ampersands == 1 && accelerator != std::string::npos) out.erase(accelerator, 1);
  return out;
}

std::string NormalizeWhitespace(const std::string& text) {
  std::string out;
  bool pending_space = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = pos;
    uint32_t cp = NextCodePoint(text, &pos);
    if (IsUnicodeSpace(cp)) {
      pending_space = !out.empty();
      continue;
    }
    if (IsInvisible(cp)) continue;
    if (pending_space) out += ' ';
    pending_space = false;
    out.append(text, start, pos - start);
  }
  return out;
}

bool LooksLikeMojibake(const std::string& text) {
  if (!IsValidUtf8(text)) return true;
  uint32_t previous = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = NextCodePoint(text, &pos);
    if (cp == 0xFFFD) return true;
    if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp <= 0x9F)) {
      return true;
    }
    // UTF-8 lead bytes read as Latin-1 (Ã Â for Latin, Ð Ñ for Cyrillic) followed by a
    // continuation byte read as Latin-1 (U+00A0..U+00BF), or "â€" from CP1252.
    bool latin1_lead = previous == 0xC3 || previous == 0xC2 || previous == 0xD0 || previous == 0xD1;
    if (latin1_lead && cp >= 0xA0 && cp <= 0xBF) return true;
    if (previous == 0xE2 && cp == 0x20AC) return true;
    previous = cp;
  }
  return false;
}

int CountWords(const std::string& text) {
  int words = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

const char* L10nDropReasonName(L10nDropReason reason) {
  switch (reason) {
    case L10nDropReason::kKept:
      return "kept";
    case L10nDropReason::kMojibake:
      return "mojibake";
    case L10nDropReason::kEmpty:
      return "empty";
    case L10nDropReason::kTooShort:
      return "too_short";
    case L10nDropReason::kTooLong:
      return "too_long";
    case L10nDropReason::kUntranslated:
      return "untranslated";
  }
  return "?";
}

L10nDropReason CleanL10nPair(std::string& src, std::string& tgt, const L10nCleanOptions& opt) {
  if (LooksLikeMojibake(src) || LooksLikeMojibake(tgt)) return L10nDropReason::kMojibake;
  for (std::string* side : {&src, &tgt}) {
    *side = NormalizeWhitespace(
        StripFormatSpecifiers(StripMarkup(StripAccelerators(NormalizeWhitespace(*side)))));
  }
  if (src.empty() || tgt.empty()) return L10nDropReason::kEmpty;
  int words = CountWords(src);
  if (words < opt.min_words) return L10nDropReason::kTooShort;
  if (words > opt.max_words) return L10nDropReason::kTooLong;
  if (tgt == src) return L10nDropReason::kUntranslated;
  return L10nDropReason::kKept;
}

}  // namespace moebench
