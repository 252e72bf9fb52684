#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/files.h"
#include "harness/util/fs.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

class FilesCorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moebench-files-" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
            std::to_string(::getpid()));
    RemoveTree(dir_);
    fs::create_directories(dir_);
    for (const char* split : {"train", "valid", "test"}) {
      Write(std::string(split) + ".en", "hello world\nthank you\n");
      Write(std::string(split) + ".de", "hallo welt\ndanke\n");
    }
  }
  void TearDown() override { RemoveTree(dir_); }

  void Write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
  }

  // Runs the loader expecting an error that mentions every needle.
  void ExpectError(const std::vector<std::string>& needles,
                   const std::vector<std::string>& langs = {"de"}) {
    try {
      LoadFilesCorpus(dir_.string(), langs);
      FAIL() << "expected an error";
    } catch (const std::runtime_error& error) {
      for (const std::string& needle : needles) {
        EXPECT_NE(std::string(error.what()).find(needle), std::string::npos)
            << "'" << error.what() << "' lacks '" << needle << "'";
      }
    }
  }

  fs::path dir_;
};

TEST_F(FilesCorpusTest, ReadsLineAlignedSplits) {
  ParallelCorpus corpus = LoadFilesCorpus(dir_.string(), {"de"});
  EXPECT_EQ(corpus.name, "files");
  EXPECT_EQ(corpus.langs, std::vector<std::string>{"de"});
  ASSERT_EQ(corpus.train.size(), 2u);
  EXPECT_EQ(corpus.train[0].lang, "de");
  EXPECT_EQ(corpus.train[0].src, "hello world");
  EXPECT_EQ(corpus.train[0].tgt, "hallo welt");
  EXPECT_EQ(corpus.train[1].tgt, "danke");
  EXPECT_EQ(corpus.valid.size(), 2u);
  EXPECT_EQ(corpus.test.size(), 2u);
  EXPECT_EQ(corpus.content_hash, ComputeCorpusHash(corpus));
  EXPECT_EQ(corpus.provenance.at("files").size(), 6u);
  EXPECT_EQ(corpus.provenance.at("files")[0].at("lines"), 2);
}

TEST_F(FilesCorpusTest, HandlesCrlfBomMissingFinalNewlineAndBlankPairs) {
  Write("train.en", "\xEF\xBB\xBFone two\r\n\r\nthree four");
  Write("train.de", "eins zwei\r\nleer\r\ndrei vier");
  ParallelCorpus corpus = LoadFilesCorpus(dir_.string(), {"de"});
  ASSERT_EQ(corpus.train.size(), 2u);
  EXPECT_EQ(corpus.train[0].src, "one two");
  EXPECT_EQ(corpus.train[0].tgt, "eins zwei");
  EXPECT_EQ(corpus.train[1].src, "three four");
  EXPECT_EQ(corpus.provenance.at("skipped_empty_pairs"), 1);
}

TEST_F(FilesCorpusTest, PrefersPairFilesAndSupportsCustomPrefixes) {
  Write("train.en", "ignored\n");
  Write("train.en-fr.en", "good morning\n");
  Write("train.en-fr.fr", "bonjour\n");
  Write("dev.en", "yes\n");
  Write("dev.fr", "oui\n");
  Write("valid.fr", "x\n");
  Write("test.fr", "non\n");
  Write("test.en", "no\n");
  FilesSplitPrefixes prefixes;
  prefixes.valid = "dev";
  ParallelCorpus corpus = LoadFilesCorpus(dir_.string(), {"fr"}, "en", prefixes);
  ASSERT_EQ(corpus.train.size(), 1u);
  EXPECT_EQ(corpus.train[0].src, "good morning");
  ASSERT_EQ(corpus.valid.size(), 1u);
  EXPECT_EQ(corpus.valid[0].tgt, "oui");
}

TEST_F(FilesCorpusTest, ReadsSeveralLanguagesSharingTheEnglishFile) {
  for (const char* split : {"train", "valid", "test"}) {
    Write(std::string(split) + ".fr", "bonjour le monde\nmerci\n");
  }
  ParallelCorpus corpus = LoadFilesCorpus(dir_.string(), {"de", "fr"});
  ASSERT_EQ(corpus.train.size(), 4u);
  EXPECT_EQ(corpus.train[2].lang, "fr");
  EXPECT_EQ(corpus.train[2].src, "hello world");
  EXPECT_EQ(corpus.train[2].tgt, "bonjour le monde");
}

TEST_F(FilesCorpusTest, LineCountMismatchNamesBothFilesAndTheLine) {
  Write("valid.de", "hallo welt\n");
  ExpectError({"valid.en", "valid.de", "has 2 lines", "has 1", "line 2"});
}

TEST_F(FilesCorpusTest, InvalidUtf8NamesFileAndLine) {
  Write("test.de", "hallo\nkaputt \xFF hier\n");
  ExpectError({"test.de", "line 2", "invalid UTF-8", "byte 8"});
}

TEST_F(FilesCorpusTest, EmptyFileIsAnError) {
  Write("train.de", "");
  ExpectError({"train.de", "empty"});
}

TEST_F(FilesCorpusTest, FileOfBlankLinesIsAnError) {
  Write("train.de", "\n\n");
  ExpectError({"train.en", "train.de", "no line pair"});
}

TEST_F(FilesCorpusTest, MissingSplitNamesTheFile) {
  fs::remove(dir_ / "test.de");
  ExpectError({"missing file", "test.de"});
  ExpectError({"fr"}, {"fr"});
}

TEST_F(FilesCorpusTest, RejectsBadArguments) {
  EXPECT_THROW(LoadFilesCorpus(dir_.string(), {}), std::runtime_error);
  EXPECT_THROW(LoadFilesCorpus((dir_ / "nope").string(), {"de"}), std::runtime_error);
  EXPECT_THROW(LoadFilesCorpus(dir_.string(), {"en"}), std::runtime_error);
}

}  // namespace
}  // namespace moebench
