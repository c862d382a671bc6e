// openai_response_test.cc: reading OpenAI-compatible bodies without a server: label distributions and echoed
// log-probabilities, including the hostile values the judge_response fuzzer looks for (log-probabilities
// above 0, offsets that overflow when subtracted).
#include "judge/backends/openai_response.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "nlohmann/json.hpp"

namespace rlj {
namespace {

using nlohmann::json;

const std::map<std::string, double> kLabels{{"yes", 1.0}, {"no", 0.0}};

// A chat completion whose first token has the given alternatives (token, logprob).
std::string LabelBody(const std::vector<std::pair<std::string, double>>& alternatives) {
  json top = json::array();
  for (const auto& [token, logprob] : alternatives) top.push_back({{"token", token}, {"logprob", logprob}});
  json first = {{"token", alternatives.front().first}, {"logprob", alternatives.front().second}, {"top_logprobs", top}};
  return json{{"choices", {{{"message", {{"content", "yes"}}}, {"logprobs", {{"content", {first}}}}}}},
              {"usage", {{"prompt_tokens", 12}, {"completion_tokens", 1}}}}
      .dump();
}

// A legacy completion with echo.
std::string EchoBody(const std::vector<std::string>& tokens, const json& logprobs, const json& offsets) {
  return json{
      {"choices", {{{"logprobs", {{"tokens", tokens}, {"token_logprobs", logprobs}, {"text_offset", offsets}}}}}}}
      .dump();
}

TEST(OpenAIResponseTest, LabelRewardIsTheExpectationUnderTheLabelsProbabilities) {
  Judgement judgement;
  int64_t tokens_in = 0, tokens_out = 0;
  ASSERT_TRUE(ReadLabelDistribution(LabelBody({{"yes", -0.2}, {"no", -1.9}, {"maybe", -3.0}}), kLabels, 0.5, &judgement,
                                    &tokens_in, &tokens_out));
  const double p_yes = std::exp(-0.2), p_no = std::exp(-1.9);              // 0.8187, 0.1496: mass 0.9683 on the labels
  EXPECT_NEAR(judgement.verdict.reward(), p_yes / (p_yes + p_no), 1e-12);  // 0.8455
  EXPECT_NEAR(judgement.verdict.components().at("label_mass"), p_yes + p_no, 1e-12);
  EXPECT_EQ(tokens_in, 12);
  EXPECT_EQ(tokens_out, 1);
}

TEST(OpenAIResponseTest, LabelLogprobAboveZeroIsAParseErrorNotANaNReward) {
  // exp(800) is infinite: normalising by an infinite mass used to give a NaN reward.
  Judgement judgement;
  int64_t tokens_in = 0, tokens_out = 0;
  EXPECT_FALSE(ReadLabelDistribution(LabelBody({{"yes", 800.0}, {"no", -1.0}}), kLabels, 0.5, &judgement, &tokens_in,
                                     &tokens_out));
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_EQ(judgement.verdict.error().kind(), "parse");
  EXPECT_NE(judgement.verdict.error().message().find("not a log-probability"), std::string::npos)
      << judgement.verdict.error().message();
  EXPECT_EQ(judgement.verdict.reward(), 0);
  // 3.5 (exp 33) would have been a "probability" above 1.
  Judgement judgement2;
  EXPECT_FALSE(ReadLabelDistribution(LabelBody({{"no", 3.5}}), kLabels, 0.5, &judgement2, &tokens_in, &tokens_out));
}

TEST(OpenAIResponseTest, LabelLogprobRoundedJustAboveZeroCountsAsCertain) {
  Judgement judgement;
  int64_t tokens_in = 0, tokens_out = 0;
  ASSERT_TRUE(ReadLabelDistribution(LabelBody({{"yes", 1e-9}}), kLabels, 0.5, &judgement, &tokens_in, &tokens_out));
  EXPECT_EQ(judgement.verdict.reward(), 1.0);
  EXPECT_EQ(judgement.verdict.components().at("label_mass"), 1.0);
}

TEST(OpenAIResponseTest, LikelihoodIsTheMeanLogprobOfTheTokensOverTheCompletion) {
  // "Q: 24": the completion is characters [3, 5) ("24"); tokens "Q" [0,1), ": " [1,3), "2" [3,4), "4" [4,5).
  Judgement judgement;
  int64_t tokens_in = 0, tokens_out = 0;
  const CompletionSpan span{.begin_bytes = 3, .end_bytes = 5, .begin_chars = 3, .end_chars = 5};
  ASSERT_TRUE(ReadCompletionLikelihood(EchoBody({"Q", ": ", "2", "4"}, {nullptr, -2.0, -0.5, -0.25}, {0, 1, 3, 4}),
                                       span, &judgement, &tokens_in, &tokens_out));
  EXPECT_DOUBLE_EQ(judgement.verdict.reward(), -0.375);  // (-0.5 - 0.25) / 2
  EXPECT_DOUBLE_EQ(judgement.verdict.components().at("sum_logprob"), -0.75);
  EXPECT_EQ(judgement.verdict.components().at("completion_tokens"), 2);
}

TEST(OpenAIResponseTest, LikelihoodOffsetsThatOverflowAreRefused) {
  // Subtracting INT64_MIN from INT64_MAX overflowed (undefined behaviour).
  Judgement judgement;
  int64_t tokens_in = 0, tokens_out = 0;
  const CompletionSpan span{.begin_bytes = 0, .end_bytes = 1, .begin_chars = 0, .end_chars = 1};
  EXPECT_FALSE(ReadCompletionLikelihood(
      EchoBody({"a", "b"}, {-1.0, -2.0}, {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}),
      span, &judgement, &tokens_in, &tokens_out));
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_NE(judgement.verdict.error().message().find("text_offset holds"), std::string::npos)
      << judgement.verdict.error().message();
  Judgement negative;
  EXPECT_FALSE(
      ReadCompletionLikelihood(EchoBody({"a", "b"}, {-1.0, -2.0}, {-1, 0}), span, &negative, &tokens_in, &tokens_out));
  Judgement unsigned_huge;
  EXPECT_FALSE(ReadCompletionLikelihood(EchoBody({"a", "b"}, {-1.0, -2.0}, {0, std::numeric_limits<uint64_t>::max()}),
                                        span, &unsigned_huge, &tokens_in, &tokens_out));
}

TEST(OpenAIResponseTest, LikelihoodLogprobAboveZeroIsAParseError) {
  Judgement judgement;
  int64_t tokens_in = 0, tokens_out = 0;
  const CompletionSpan span{.begin_bytes = 0, .end_bytes = 2, .begin_chars = 0, .end_chars = 2};
  EXPECT_FALSE(
      ReadCompletionLikelihood(EchoBody({"a", "b"}, {-1.0, 2.5}, {0, 1}), span, &judgement, &tokens_in, &tokens_out));
  ASSERT_TRUE(judgement.verdict.has_error());
  EXPECT_NE(judgement.verdict.error().message().find("not a log-probability"), std::string::npos);
}

TEST(OpenAIResponseTest, ChatCompletionReadsContentRefusalsAndMissingFields) {
  const ChatAnswer answer = ReadChatCompletion(R"({"choices":[{"message":{"content":"{\"score\": 7}"}}],
                                                   "usage":{"prompt_tokens":5,"completion_tokens":3}})");
  ASSERT_TRUE(answer.ok);
  EXPECT_EQ(answer.content, "{\"score\": 7}");
  EXPECT_EQ(answer.tokens_in, 5);
  EXPECT_EQ(answer.tokens_out, 3);
  const ChatAnswer refusal = ReadChatCompletion(R"({"choices":[{"message":{"content":null,"refusal":"no"}}]})");
  EXPECT_FALSE(refusal.ok);
  EXPECT_EQ(refusal.kind, "refusal");
  const ChatAnswer broken = ReadChatCompletion(R"({"choices":[{"message":)");
  EXPECT_FALSE(broken.ok);
  EXPECT_EQ(broken.kind, "parse");
}

}  // namespace
}  // namespace rlj
