// common_test.cc: CRC-32C vectors, answer matching, UTF-8 checks and atomic file writes.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/answer_match.h"
#include "common/crc32c.h"
#include "common/dataset.h"
#include "common/file_util.h"
#include "common/utf8.h"
#include "test_util.h"

namespace rlj {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);  // the standard check value
  const std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8a9136aau);  // RFC 3720 B.4
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(ascending), 0x46dd794eu);
}

TEST(Crc32c, ExtendEqualsWhole) {
  const std::string text = "the quick brown fox jumps over the lazy dog, twice over";
  for (size_t split = 0; split <= text.size(); ++split) {
    EXPECT_EQ(Crc32cExtend(Crc32c(text.data(), split), text.data() + split, text.size() - split), Crc32c(text));
  }
}

TEST(AnswerMatch, NumbersAndExact) {
  EXPECT_EQ(LastNumber("the answer is 42."), 42.0);
  EXPECT_EQ(LastNumber("-17"), -17.0);
  EXPECT_EQ(LastNumber("x = 3.25"), 3.25);
  EXPECT_EQ(LastNumber("1,234 apples"), 1234.0);
  EXPECT_EQ(LastNumber("no digits"), std::nullopt);
  EXPECT_TRUE(NumericMatch(" 46", "46", 1e-9));
  EXPECT_TRUE(NumericMatch("so 3+4=7", "7", 1e-9));
  EXPECT_FALSE(NumericMatch("47", "46", 0.5));
  EXPECT_TRUE(NumericMatch("46.4", "46", 0.5));
  EXPECT_FALSE(NumericMatch("46", "forty-six", 0.5));
  EXPECT_FALSE(NumericMatch("", "1", 0.5));
  EXPECT_TRUE(ExactMatch("  Paris\n", "Paris"));
  EXPECT_FALSE(ExactMatch("paris", "Paris"));
}

TEST(Utf8, AcceptsValidRejectsInvalid) {
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("héllo wörld ✓ 😀"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("a\xe2\x82"));         // truncated at the end
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
}

TEST(Utf8, RepairReplacesMaximalSubparts) {
  const std::string kReplacement = "\xef\xbf\xbd";
  EXPECT_EQ(ToValidUtf8("héllo 😀"), "héllo 😀");
  EXPECT_EQ(ToValidUtf8("a\xff"
                        "b"),
            "a" + kReplacement + "b");
  // A truncated 3-byte sequence is one maximal subpart: one replacement, as from_utf8_lossy does.
  EXPECT_EQ(ToValidUtf8("a\xe2\x82"
                        "b"),
            "a" + kReplacement + "b");
  EXPECT_EQ(ToValidUtf8("\xe2\x82"), kReplacement);
  // An overlong lead byte and its continuation are two separate errors.
  EXPECT_EQ(ToValidUtf8("\xc0\xaf"), kReplacement + kReplacement);
  // A surrogate: ED is a valid lead but A0 is outside its range, so ED alone, then A0, then 80.
  EXPECT_EQ(ToValidUtf8("\xed\xa0\x80"), kReplacement + kReplacement + kReplacement);
  for (int byte = 0; byte < 256; ++byte) {
    EXPECT_TRUE(IsValidUtf8(ToValidUtf8(std::string(1, static_cast<char>(byte)) + "\x80\xbf")));
  }
}

TEST(FileUtil, AtomicWriteReplacesAndLeavesNoTemp) {
  testing::ScratchDir dir;
  const std::string path = dir.file("f.txt");
  RLJ_ASSERT_OK(WriteFileAtomically(path, "one"));
  RLJ_ASSERT_OK(WriteFileAtomically(path, "two"));
  RLJ_ASSERT_OK_AND_ASSIGN(std::string content, ReadFile(path));
  EXPECT_EQ(content, "two");
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
}

TEST(FileUtil, WriteIntoMissingDirectoryNamesPath) {
  EXPECT_TRUE(testing::FailsWith(WriteFileAtomically("/nonexistent-dir/x", "a"), absl::StatusCode::kNotFound,
                                 "/nonexistent-dir/x"));
}

}  // namespace
}  // namespace rlj
