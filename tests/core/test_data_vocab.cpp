#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/synthetic.h"
#include "datasets/vocab.h"
#include "harness/util/fs.h"

namespace moebench {
namespace {

namespace fs = std::filesystem;

class VocabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("moebench-vocab-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
    RemoveTree(dir_);
    SyntheticOptions opt;
    opt.n_train = 300;
    opt.n_valid = 20;
    opt.n_test = 20;
    corpus_ = MakeSyntheticCorpus(opt);
  }
  void TearDown() override { RemoveTree(dir_); }

  VocabOptions Options(int vocab_size = 200) const {
    VocabOptions opt;
    opt.vocab_size = vocab_size;
    opt.cache_dir = dir_.string();
    return opt;
  }

  fs::path dir_;
  ParallelCorpus corpus_;
};

TEST_F(VocabTest, RoundTripsTrainingSentences) {
  Vocab vocab = Vocab::BuildOrLoad(corpus_, Options());
  for (size_t i = 0; i < corpus_.train.size(); i += 7) {
    const ParallelExample& example = corpus_.train[i];
    EXPECT_EQ(vocab.Decode(vocab.Encode(example.src)), example.src);
    EXPECT_EQ(vocab.Decode(vocab.Encode(example.tgt)), example.tgt);
  }
}

TEST_F(VocabTest, RoundTripsTextThatNfkcWouldChange) {
  // Full-width comma, ellipsis, full-width digits and a no-break space: NFKC would rewrite each.
  ParallelCorpus corpus;
  corpus.name = "unicode";
  corpus.langs = {"zh"};
  const std::vector<std::string> targets = {
      "\xE5\x97\xAF\xEF\xBC\x8C\xE6\xB2\xA1\xE6\x9C\x89\xE9\x94\x99\xE8\xAF\xAF",
      "\xE7\xAD\x89\xE5\xBE\x85\xE2\x80\xA6",
      "\xEF\xBC\x91\xEF\xBC\x92 \xE4\xB8\xAA\xE6\x96\x87\xE4\xBB\xB6",
      "50\xC2\xA0% \xE5\xAE\x8C\xE6\x88\x90"};
  for (int i = 0; i < 40; ++i) {
    for (const std::string& tgt : targets)
      corpus.train.push_back({"zh", "line " + std::to_string(i), tgt});
  }
  corpus.content_hash = ComputeCorpusHash(corpus);
  Vocab vocab = Vocab::BuildOrLoad(corpus, Options(100));
  for (const std::string& tgt : targets) EXPECT_EQ(vocab.Decode(vocab.Encode(tgt)), tgt);
}

TEST_F(VocabTest, HasFixedSpecialIdsAndDecodeSkipsThem) {
  Vocab vocab = Vocab::BuildOrLoad(corpus_, Options());
  EXPECT_EQ(vocab.pad_id(), 0);
  EXPECT_EQ(vocab.unk_id(), 1);
  EXPECT_EQ(vocab.bos_id(), 2);
  EXPECT_EQ(vocab.eos_id(), 3);
  EXPECT_GT(vocab.size(), 4 + 3);
  EXPECT_LE(vocab.size(), 200);
  const std::string& text = corpus_.train[0].tgt;
  std::vector<int> ids = vocab.Encode(text);
  for (int id : ids) {
    EXPECT_GT(id, 3) << "plain text encoded to a special id";
  }
  std::vector<int> wrapped = {vocab.bos_id()};
  wrapped.insert(wrapped.end(), ids.begin(), ids.end());
  wrapped.push_back(vocab.eos_id());
  wrapped.push_back(vocab.pad_id());
  wrapped.push_back(vocab.pad_id());
  EXPECT_EQ(vocab.Decode(wrapped), text);
  EXPECT_THROW(vocab.Decode({vocab.size()}), std::runtime_error);
  EXPECT_THROW(vocab.Decode({-1}), std::runtime_error);
}

TEST_F(VocabTest, LanguageTagsAreSinglePieces) {
  Vocab vocab = Vocab::BuildOrLoad(corpus_, Options());
  std::set<int> tag_ids;
  for (const std::string& lang : corpus_.langs) {
    int id = vocab.LangTagId(lang);
    tag_ids.insert(id);
    EXPECT_GT(id, 3);
    std::vector<int> ids = vocab.Encode("<2" + lang + ">");
    EXPECT_EQ(std::count(ids.begin(), ids.end(), id), 1) << lang;
    EXPECT_EQ(vocab.Decode({id}), "<2" + lang + ">");
  }
  EXPECT_EQ(tag_ids.size(), corpus_.langs.size());
  try {
    vocab.LangTagId("qq");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("'qq'"), std::string::npos) << error.what();
  }
}

TEST_F(VocabTest, SecondBuildLoadsTheCachedFileWithoutRetraining) {
  Vocab first = Vocab::BuildOrLoad(corpus_, Options());
  struct stat before {};
  ASSERT_EQ(::stat(first.model_path().c_str(), &before), 0);
  Vocab second = Vocab::BuildOrLoad(corpus_, Options());
  struct stat after {};
  ASSERT_EQ(::stat(second.model_path().c_str(), &after), 0);
  EXPECT_EQ(first.model_path(), second.model_path());
  EXPECT_EQ(first.model_hash(), second.model_hash());
  // Retraining would have renamed a new file into place: a new inode and modification time.
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  EXPECT_EQ(fs::path(first.model_path()).parent_path(), dir_);
  EXPECT_EQ(fs::path(first.model_path()).filename().string().rfind("spm-", 0), 0u);
}

TEST_F(VocabTest, CacheKeyCoversOptionsAndCorpus) {
  Vocab a = Vocab::BuildOrLoad(corpus_, Options(200));
  Vocab b = Vocab::BuildOrLoad(corpus_, Options(150));
  EXPECT_NE(a.model_path(), b.model_path());
  ParallelCorpus other = corpus_;
  other.train.pop_back();
  other.content_hash = ComputeCorpusHash(other);
  Vocab c = Vocab::BuildOrLoad(other, Options(200));
  EXPECT_NE(a.model_path(), c.model_path());
}

TEST_F(VocabTest, TrainingIsDeterministic) {
  Vocab a = Vocab::BuildOrLoad(corpus_, Options());
  VocabOptions elsewhere = Options();
  elsewhere.cache_dir = (dir_ / "other").string();
  Vocab b = Vocab::BuildOrLoad(corpus_, elsewhere);
  EXPECT_NE(a.model_path(), b.model_path());
  EXPECT_EQ(a.model_hash(), b.model_hash());
}

TEST_F(VocabTest, EmptyCacheDirUsesMoebenchCacheVariable) {
  std::string env_dir = (dir_ / "from-env").string();
  ASSERT_EQ(::setenv("MOEBENCH_CACHE", env_dir.c_str(), 1), 0);
  VocabOptions opt;
  opt.vocab_size = 200;
  Vocab vocab = Vocab::BuildOrLoad(corpus_, opt);
  ::unsetenv("MOEBENCH_CACHE");
  EXPECT_EQ(fs::path(vocab.model_path()).parent_path(), fs::path(env_dir));
}

TEST_F(VocabTest, ConcurrentBuildsInTwoProcessesLeaveOneGoodModel) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 0;
    try {
      Vocab::BuildOrLoad(corpus_, Options());
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  Vocab parent = Vocab::BuildOrLoad(corpus_, Options());
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  Vocab reloaded = Vocab::Load(parent.model_path());
  EXPECT_EQ(reloaded.model_hash(), parent.model_hash());
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    ++files;
    EXPECT_EQ(entry.path().extension(), ".model") << "left behind: " << entry.path();
  }
  EXPECT_EQ(files, 1);
}

TEST_F(VocabTest, LoadRejectsMissingAndCorruptFiles) {
  fs::create_directories(dir_);
  std::string missing = (dir_ / "nope.model").string();
  try {
    Vocab::Load(missing);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos);
  }
  std::string corrupt = (dir_ / "corrupt.model").string();
  std::ofstream(corrupt) << "this is not a protobuf";
  EXPECT_THROW(Vocab::Load(corrupt), std::runtime_error);
}

TEST_F(VocabTest, RejectsEmptyTrainSplitAndBadOptions) {
  ParallelCorpus empty;
  empty.name = "empty";
  empty.langs = {"xa"};
  EXPECT_THROW(Vocab::BuildOrLoad(empty, Options()), std::runtime_error);
  EXPECT_THROW(Vocab::BuildOrLoad(corpus_, Options(2)), std::runtime_error);
}

}  // namespace
}  // namespace moebench
