// stop_matcher_test.cc: where a completion ends and what text and tokens it ends with: stop ids (the
// tokenizer's and asked-for ones), stop strings cut where they begin, the length limit.
#include "model/stop_matcher.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/tokenizer/byte_tokenizer.h"
#include "test_util.h"

namespace rlj {
namespace {

std::vector<int32_t> Bytes(std::string_view text) { return std::vector<int32_t>(text.begin(), text.end()); }

TEST(StopMatcher, TheTokenizersStopIdAndAskedForIdsEndTheCompletion) {
  const ByteTokenizer tokenizer;
  const StopMatcher matcher(tokenizer, tokenizer.vocab_size(), std::vector<int32_t>{'!'}, {});
  std::vector<int32_t> tokens = Bytes("ok");
  RLJ_ASSERT_OK_AND_ASSIGN(auto going, matcher.Check(tokens));
  EXPECT_FALSE(going.has_value());
  tokens.push_back(tokenizer.eos_id());
  RLJ_ASSERT_OK_AND_ASSIGN(auto at_eos, matcher.Check(tokens));
  ASSERT_TRUE(at_eos.has_value());
  EXPECT_EQ(at_eos->finish, FinishReason::kStopToken);
  EXPECT_EQ(at_eos->text, "ok");
  EXPECT_EQ(at_eos->text_tokens, 2u);
  RLJ_ASSERT_OK_AND_ASSIGN(auto at_bang, matcher.Check(Bytes("yes!")));
  ASSERT_TRUE(at_bang.has_value());
  EXPECT_EQ(at_bang->text, "yes");
}

TEST(StopMatcher, AStopStringCutsTheTextWhereItBeginsAndDropsTheTokensFromThere) {
  const ByteTokenizer tokenizer;
  const StopMatcher matcher(tokenizer, tokenizer.vocab_size(), {}, {"\n\n", "END"});
  RLJ_ASSERT_OK_AND_ASSIGN(auto partial, matcher.Check(Bytes("42\n")));
  EXPECT_FALSE(partial.has_value());
  RLJ_ASSERT_OK_AND_ASSIGN(auto end, matcher.Check(Bytes("42\n\n")));
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->finish, FinishReason::kStopString);
  EXPECT_EQ(end->text, "42");
  EXPECT_EQ(end->text_tokens, 2u);
  // The earliest of several stop strings wins.
  RLJ_ASSERT_OK_AND_ASSIGN(auto earliest, matcher.Check(Bytes("7 END\n\n")));
  ASSERT_TRUE(earliest.has_value());
  EXPECT_EQ(earliest->text, "7 ");
  EXPECT_EQ(earliest->text_tokens, 2u);
}

TEST(StopMatcher, TheLengthLimitKeepsEverything) {
  const ByteTokenizer tokenizer;
  const StopMatcher matcher(tokenizer, tokenizer.vocab_size(), {}, {"x"});
  RLJ_ASSERT_OK_AND_ASSIGN(const CompletionEnd end, matcher.AtLength(Bytes("abc")));
  EXPECT_EQ(end.finish, FinishReason::kLength);
  EXPECT_EQ(end.text, "abc");
  EXPECT_EQ(end.text_tokens, 3u);
}

}  // namespace
}  // namespace rlj
