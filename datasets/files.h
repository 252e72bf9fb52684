// The `files` dataset: the user's own line-aligned parallel text, e.g. WMT data they prepared.
// For each target language `xx` and split prefix P (train, valid, test), the reader takes
//   <dir>/P.<src>-xx.<src> and <dir>/P.<src>-xx.xx   (fairseq-style pair files) when they exist,
//   else <dir>/P.<src> and <dir>/P.xx                  (one English file shared by every language).
// Line i of one file translates line i of the other. Lines are UTF-8 (a leading byte-order mark
// and a trailing '\r' are removed); a pair with an empty side is skipped and counted in the
// provenance. Missing files, empty files, unequal line counts and invalid UTF-8 are errors that
// name the file (and the line).
#pragma once

#include <string>
#include <vector>

#include "datasets/corpus.h"

namespace moebench {

struct FilesSplitPrefixes {
  std::string train = "train";
  std::string valid = "valid";
  std::string test = "test";
};

ParallelCorpus LoadFilesCorpus(const std::string& dir, const std::vector<std::string>& langs,
                               const std::string& src_lang = "en",
                               const FilesSplitPrefixes& prefixes = FilesSplitPrefixes());

}  // namespace moebench
