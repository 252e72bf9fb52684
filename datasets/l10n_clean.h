// Cleaning rules that turn gettext message pairs (UI strings, error messages, help text) into
// sentence pairs fit for translation training. Each rule is its own function so a test can pin
// it; CleanL10nPair applies them all in a fixed order.
#pragma once

#include <string>

namespace moebench {

// Removes format placeholders: printf (%s %d %5.2f %-10s %lu %zu %1$s %'d %%->%), Python
// %(name)s, '%' before any letter (strftime %Y %b, aptitude's %B..%b), Qt %1, braces {0} {name}
// {} {0:.2f}, shell ${var} and $VAR. Then drops quote and
// bracket pairs left empty ('' `' "" ‘’ “” „“ «» 「」 () []), and, when anything was removed,
// ':' ';' ',' left dangling at either end.
std::string StripFormatSpecifiers(const std::string& text);

// Removes HTML/Pango tags of known names (<b>, </b>, <a href="...">, <br/>, <span ...>, ...;
// other <words> such as "<file>" stay) and decodes the entities &amp; &lt; &gt; &quot; &apos;
// &nbsp; &#N; &#xH;. Block-level tags (br, p, li, div, hr, tr, td, h1-h6) become a space.
// Also GnuPG's help markup: a leading "|ARG|" and a leading "@".
std::string StripMarkup(const std::string& text);

// Removes keyboard accelerators: "(_F)" / "(&F)" groups after CJK labels (with full-width
// parentheses too), a single GTK mnemonic underscore ("_File", "Op_en"; left alone when the
// text holds several underscores or it joins two capitals/digits as in "GTK_DEBUG"), and a
// single Qt/KDE ampersand ("&File"; not "a & b", "a && b" or an entity).
std::string StripAccelerators(const std::string& text);

// Tabs, newlines, no-break and other Unicode spaces -> ' '; runs collapsed; ends trimmed.
std::string NormalizeWhitespace(const std::string& text);

// True for text that is not clean UTF-8: ill-formed bytes, U+FFFD, control characters (other
// than tab/newline/CR), or the traces of UTF-8 decoded as Latin-1/CP1252 ("Ã©", "â€™", "Ã¤").
bool LooksLikeMojibake(const std::string& text);

// Whitespace-separated words.
int CountWords(const std::string& text);

enum class L10nDropReason {
  kKept,
  kMojibake,      // either side fails LooksLikeMojibake
  kEmpty,         // a side is empty after cleaning
  kTooShort,      // English side has fewer than min_words words
  kTooLong,       // English side has more than max_words words
  kUntranslated,  // target equals source after cleaning
};

const char* L10nDropReasonName(L10nDropReason reason);

struct L10nCleanOptions {
  int min_words = 2;
  int max_words = 60;
};

// Cleans both sides in place (markup, accelerators, format specifiers, whitespace) and says
// whether to keep the pair. Word limits apply to the English side only: Chinese and Japanese
// targets have no spaces to count. Exact duplicates are the caller's job (it sees all pairs).
L10nDropReason CleanL10nPair(std::string& src, std::string& tgt, const L10nCleanOptions& opt);

}  // namespace moebench
