// byte_tokenizer_test.cc: byte-level ids, special tokens, and decoding any ids to valid UTF-8.
#include "common/tokenizer/byte_tokenizer.h"

#include <gtest/gtest.h>

#include "common/utf8.h"
#include "test_util.h"

namespace rlj {
namespace {

TEST(ByteTokenizer, EncodesBytesAndRoundTripsText) {
  ByteTokenizer tokenizer;
  const std::string text = "12+34= é";
  const std::vector<int32_t> ids = tokenizer.Encode(text);
  ASSERT_EQ(ids.size(), text.size());  // é is two bytes
  EXPECT_EQ(ids[0], '1');
  EXPECT_EQ(ids[ids.size() - 1], 0xa9);
  RLJ_ASSERT_OK_AND_ASSIGN(std::string decoded, tokenizer.Decode(ids));
  EXPECT_EQ(decoded, text);
}

TEST(ByteTokenizer, PromptStartsWithBosAndSpecialsDecodeToNothing) {
  ByteTokenizer tokenizer;
  const std::vector<int32_t> prompt = tokenizer.EncodePrompt("1+1=");
  EXPECT_EQ(prompt, (std::vector<int32_t>{ByteTokenizer::kBos, '1', '+', '1', '='}));
  const std::vector<int32_t> ids{'4', ByteTokenizer::kEos, ByteTokenizer::kPad};
  RLJ_ASSERT_OK_AND_ASSIGN(std::string decoded, tokenizer.Decode(ids));
  EXPECT_EQ(decoded, "4");
  EXPECT_EQ(tokenizer.vocab_size(), 259);
}

TEST(ByteTokenizer, IdsOutsideTheVocabularyAreErrors) {
  ByteTokenizer tokenizer;
  const std::vector<int32_t> ids{'a', 259};
  EXPECT_TRUE(
      testing::FailsWith(tokenizer.Decode(ids), absl::StatusCode::kInvalidArgument, "token id 259 at position 1"));
  const std::vector<int32_t> negative{-1};
  EXPECT_FALSE(tokenizer.Decode(negative).ok());
}

TEST(ByteTokenizer, ArbitraryBytesDecodeToValidUtf8) {
  ByteTokenizer tokenizer;
  const std::vector<int32_t> ids{'o', 'k', 0xff, 0xe2, 0x82};  // what an untrained model may sample
  RLJ_ASSERT_OK_AND_ASSIGN(std::string decoded, tokenizer.Decode(ids));
  EXPECT_TRUE(IsValidUtf8(decoded));
  EXPECT_EQ(decoded, "ok\xef\xbf\xbd\xef\xbf\xbd");
}

}  // namespace
}  // namespace rlj
