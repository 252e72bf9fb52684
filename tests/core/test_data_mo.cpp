#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/mo_reader.h"
#include "test_data_mo_builder.h"

namespace moebench {
namespace {

using moebench::testing::AppendWord;
using moebench::testing::BuildMo;

// Two entries, laid out by hand: header (28 bytes), originals table at 28, translations at 44,
// strings from 60: "" @60, "Hello" @61, header text (40 bytes) @67, "Hallo" @108.
std::string HandWrittenMo(bool big_endian) {
  const std::string header_text = "Content-Type: text/plain; charset=UTF-8\n";
  std::string out;
  for (uint32_t word : {0x950412deu, 0u, 2u, 28u, 44u, 0u, 0u}) AppendWord(word, big_endian, out);
  for (uint32_t word : {0u, 60u, 5u, 61u}) AppendWord(word, big_endian, out);    // originals
  for (uint32_t word : {40u, 67u, 5u, 108u}) AppendWord(word, big_endian, out);  // translations
  out += std::string("\0", 1) + "Hello" + std::string("\0", 1) + header_text +
         std::string("\0", 1) + "Hallo" + std::string("\0", 1);
  return out;
}

TEST(MoReader, ParsesHandWrittenLittleEndianFile) {
  std::string bytes = HandWrittenMo(false);
  ASSERT_EQ(bytes.size(), 114u);
  EXPECT_EQ(bytes.substr(0, 4), std::string("\xde\x12\x04\x95", 4));
  MoCatalog catalog = ParseMo(bytes, "le.mo");
  EXPECT_EQ(catalog.header, "Content-Type: text/plain; charset=UTF-8\n");
  ASSERT_EQ(catalog.messages.size(), 1u);
  EXPECT_EQ(catalog.messages[0].msgid, "Hello");
  EXPECT_EQ(catalog.messages[0].context, "");
  EXPECT_EQ(catalog.messages[0].msgid_plural, "");
  EXPECT_EQ(catalog.messages[0].msgstr, std::vector<std::string>{"Hallo"});
  EXPECT_EQ(MoHeaderCharset(catalog.header), "UTF-8");
}

TEST(MoReader, ParsesHandWrittenBigEndianFile) {
  std::string bytes = HandWrittenMo(true);
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x95\x04\x12\xde", 4));
  MoCatalog catalog = ParseMo(bytes, "be.mo");
  ASSERT_EQ(catalog.messages.size(), 1u);
  EXPECT_EQ(catalog.messages[0].msgid, "Hello");
  EXPECT_EQ(catalog.messages[0].msgstr[0], "Hallo");
  EXPECT_EQ(MoHeaderCharset(catalog.header), "UTF-8");
}

TEST(MoReader, SplitsPluralFormsAndStripsContext) {
  for (bool big_endian : {false, true}) {
    std::string bytes =
        BuildMo({{"", "Content-Type: text/plain; charset=utf-8\n"},
                 {std::string("%d file\0%d files", 16), std::string("%d Datei\0%d Dateien", 19)},
                 {"menu\x04Open",
                  "\xC3\x96"
                  "ffnen"}},
                big_endian);
    MoCatalog catalog = ParseMo(bytes, "plural.mo");
    ASSERT_EQ(catalog.messages.size(), 2u);
    const MoMessage& plural = catalog.messages[0];
    EXPECT_EQ(plural.msgid, "%d file");
    EXPECT_EQ(plural.msgid_plural, "%d files");
    EXPECT_EQ(plural.msgstr, (std::vector<std::string>{"%d Datei", "%d Dateien"}));
    const MoMessage& with_context = catalog.messages[1];
    EXPECT_EQ(with_context.context, "menu");
    EXPECT_EQ(with_context.msgid, "Open");
    EXPECT_EQ(with_context.msgstr, std::vector<std::string>{"\xC3\x96"
                                                            "ffnen"});
  }
}

TEST(MoReader, FileWithoutHeaderHasEmptyHeader) {
  MoCatalog catalog = ParseMo(BuildMo({{"Yes", "Ja"}}, false), "noheader.mo");
  EXPECT_EQ(catalog.header, "");
  EXPECT_EQ(MoHeaderCharset(catalog.header), "");
  ASSERT_EQ(catalog.messages.size(), 1u);
}

void ExpectParseError(const std::string& bytes, const std::string& needle) {
  try {
    ParseMo(bytes, "broken.mo");
    FAIL() << "expected an error containing '" << needle << "'";
  } catch (const std::runtime_error& error) {
    std::string what = error.what();
    EXPECT_NE(what.find("broken.mo"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

TEST(MoReader, RejectsBadMagicAndTruncation) {
  std::string good = HandWrittenMo(false);
  std::string bad_magic = good;
  bad_magic[0] = 'x';
  ExpectParseError(bad_magic, "magic");
  ExpectParseError(good.substr(0, 20), "too short");
  // Tables that run past the end: claim 1000 entries.
  std::string too_many = good;
  too_many[8] = static_cast<char>(0xE8);
  too_many[9] = static_cast<char>(0x03);
  ExpectParseError(too_many, "runs past the end");
  // A string that runs past the end: the "Hallo" descriptor says length 5 at offset 112.
  std::string bad_string = good;
  bad_string[56] = 112;
  ExpectParseError(bad_string, "translation string 1");
  std::string revision = good;
  revision[6] = 2;  // major revision 2
  ExpectParseError(revision, "revision");
}

TEST(MoReader, ReadsFilesAndNamesMissingOnes) {
  auto path = std::filesystem::temp_directory_path() / "moebench-test-reader.mo";
  std::ofstream(path, std::ios::binary) << HandWrittenMo(true);
  EXPECT_EQ(ReadMoFile(path.string()).messages.size(), 1u);
  std::filesystem::remove(path);
  try {
    ReadMoFile(path.string());
    FAIL();
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos);
  }
}

TEST(MoHeaderCharset, ReadsTheContentTypeLine) {
  EXPECT_EQ(MoHeaderCharset("Project-Id-Version: x\ncontent-type: text/plain; charset=EUC-JP\n"),
            "EUC-JP");
  EXPECT_EQ(MoHeaderCharset("Content-Type: text/plain; charset=ISO-8859-1; x=y\n"), "ISO-8859-1");
  EXPECT_EQ(MoHeaderCharset("Content-Type: text/plain\n"), "");
}

}  // namespace
}  // namespace moebench
