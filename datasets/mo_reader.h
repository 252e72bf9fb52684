// A reader for GNU gettext binary catalogs (.mo files), written here so the l10n corpus does not
// depend on libintl's runtime lookup (which only answers "translate this string", not "list
// every pair"). Format: GNU gettext manual, section "The Format of GNU MO Files".
// Only the static string tables are read; the system-dependent strings of revision 1 files
// (those with <PRIu64>-style segments) are ignored.
#pragma once

#include <string>
#include <vector>

namespace moebench {

struct MoMessage {
  std::string context;              // msgctxt (the part before '\x04'), empty when none
  std::string msgid;                // the singular source string, context removed
  std::string msgid_plural;         // empty unless a plural entry
  std::vector<std::string> msgstr;  // msgstr[0]: singular translation; one entry per plural form
};

struct MoCatalog {
  std::string header;               // msgstr of the empty msgid ("Content-Type: ..." etc.)
  std::vector<MoMessage> messages;  // file order; the header entry excluded
};

// Parses .mo bytes of either byte order (magic 0x950412de). Throws std::runtime_error naming
// `source_name` and the offending entry when the data is truncated or inconsistent.
MoCatalog ParseMo(const std::string& bytes, const std::string& source_name);

// Reads and parses a file; errors name the path.
MoCatalog ReadMoFile(const std::string& path);

// The charset named by the header's "Content-Type: ...; charset=X" line, e.g. "UTF-8";
// empty when the header names none.
std::string MoHeaderCharset(const std::string& header);

}  // namespace moebench
