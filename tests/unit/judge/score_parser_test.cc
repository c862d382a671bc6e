// score_parser_test.cc: reading a teacher's score (JSON, fenced JSON, JSON inside prose, the pattern,
// nothing), linear scaling onto the reward range, out-of-range scores, and rubric substitution.
#include "judge/score_parser.h"

#include <gtest/gtest.h>

#include "judge/rubric_template.h"
#include "test_util.h"

namespace rlj {
namespace {

using ::rlj::testing::FailsWith;

constexpr char kDefaultPattern[] = "(?i)score\\s*[:=]\\s*(-?[0-9]+(?:\\.[0-9]+)?)";

ScoreParser DefaultParser() {
  auto parser = ScoreParser::Create("score", kDefaultPattern);
  EXPECT_TRUE(parser.ok()) << parser.status();
  return std::move(parser).value();
}

TEST(ScoreParser, BareJson) {
  const ParsedScore parsed = DefaultParser().Parse(R"({"score": 7, "rationale": "mostly right"})");
  EXPECT_EQ(parsed.score, 7.0);
  EXPECT_EQ(parsed.found_by, "json");
  EXPECT_EQ(parsed.rationale, "mostly right");
}

TEST(ScoreParser, FencedJson) {
  const ParsedScore parsed =
      DefaultParser().Parse("```json\n{\n  \"reason\": \"uses } and { in text\",\n  \"score\": 9.5\n}\n```");
  EXPECT_EQ(parsed.score, 9.5);
  EXPECT_EQ(parsed.rationale, "uses } and { in text");
}

TEST(ScoreParser, JsonInsideTextAfterABraceThatIsNotJson) {
  const ParsedScore parsed = DefaultParser().Parse(
      "Let {x} be the answer. My verdict: {\"explanation\": \"off by one\", \"score\": \"3\"} Thanks.");
  EXPECT_EQ(parsed.score, 3.0);  // a numeric string counts
  EXPECT_EQ(parsed.found_by, "json");
  EXPECT_EQ(parsed.rationale, "off by one");
}

TEST(ScoreParser, CustomKeyAndNestedObjects) {
  auto parser = ScoreParser::Create("grade", "");
  RLJ_ASSERT_OK(parser);
  const ParsedScore parsed = parser->Parse(R"({"details": {"score": 1}, "grade": 4})");
  EXPECT_EQ(parsed.score, 4.0);
}

TEST(ScoreParser, PatternWhenNoJsonScore) {
  const std::string answer = "The completion is correct.\nScore: 8.25";
  const ParsedScore parsed = DefaultParser().Parse(answer);
  EXPECT_EQ(parsed.score, 8.25);
  EXPECT_EQ(parsed.found_by, "pattern");
  EXPECT_EQ(parsed.rationale, answer);  // no JSON rationale: the whole answer

  // A JSON object without the key falls through to the pattern too.
  const ParsedScore fallback = DefaultParser().Parse(R"({"verdict": "good"} score = -2)");
  EXPECT_EQ(fallback.score, -2.0);
  EXPECT_EQ(fallback.found_by, "pattern");
}

TEST(ScoreParser, NoScore) {
  const ParsedScore parsed = DefaultParser().Parse("I think it is quite good, {but} not perfect.");
  EXPECT_EQ(parsed.score, std::nullopt);
  EXPECT_EQ(parsed.found_by, "");
  EXPECT_EQ(parsed.rationale, "I think it is quite good, {but} not perfect.");
  EXPECT_EQ(DefaultParser().Parse(R"({"score": "high"})").score, std::nullopt);
}

TEST(ScoreParser, LongAnswerRationaleIsTruncatedOnACharacterBoundary) {
  std::string answer(1999, 'a');
  answer += "é and more";  // 'é' is two bytes starting at byte 1999: cutting at 2000 would split it
  const ParsedScore parsed = DefaultParser().Parse(answer);
  EXPECT_EQ(parsed.rationale, std::string(1999, 'a'));
  EXPECT_EQ(TruncateUtf8("abc", 10), "abc");
}

TEST(ScoreParser, BadPatterns) {
  EXPECT_TRUE(
      FailsWith(ScoreParser::Create("score", "score: ([0-9]+"), absl::StatusCode::kInvalidArgument, "score_pattern"));
  EXPECT_TRUE(
      FailsWith(ScoreParser::Create("score", "score: [0-9]+"), absl::StatusCode::kInvalidArgument, "no capture group"));
  EXPECT_TRUE(FailsWith(ScoreParser::Create("", ""), absl::StatusCode::kInvalidArgument, "both empty"));
}

TEST(ScaleScore, LinearMap) {
  const ScoreScale unit{0, 10, 0, 1};
  EXPECT_DOUBLE_EQ(*ScaleScore(0, unit), 0.0);
  EXPECT_DOUBLE_EQ(*ScaleScore(7.5, unit), 0.75);
  EXPECT_DOUBLE_EQ(*ScaleScore(10, unit), 1.0);
  const ScoreScale likert{1, 5, -1, 1};  // 1..5 onto -1..1: 3 is the middle
  EXPECT_DOUBLE_EQ(*ScaleScore(3, likert), 0.0);
  EXPECT_DOUBLE_EQ(*ScaleScore(4, likert), 0.5);
  EXPECT_DOUBLE_EQ(*ScaleScore(1, likert), -1.0);
}

TEST(ScaleScore, OutOfRange) {
  const ScoreScale unit{0, 10, 0, 1};
  EXPECT_TRUE(FailsWith(ScaleScore(11, unit), absl::StatusCode::kOutOfRange, "score 11 is outside the scale [0, 10]"));
  EXPECT_TRUE(FailsWith(ScaleScore(-0.5, unit), absl::StatusCode::kOutOfRange, "-0.5"));
  EXPECT_TRUE(FailsWith(ScaleScore(std::nan(""), unit), absl::StatusCode::kOutOfRange, "outside"));
  EXPECT_TRUE(FailsWith(ScaleScore(1, ScoreScale{5, 5, 0, 1}), absl::StatusCode::kInvalidArgument, "empty"));
}

TEST(RubricTemplate, SubstitutesOncePlaceholdersOnly) {
  const std::string rubric =
      "Q: {prompt}\nA: {completion}\nRef: {reference}\nAnswer as {\"score\": <0-10>} and keep {other}.";
  const std::string rendered = RenderRubric(rubric, {"2+2", "it is {reference}", "4"});
  EXPECT_EQ(rendered, "Q: 2+2\nA: it is {reference}\nRef: 4\nAnswer as {\"score\": <0-10>} and keep {other}.");
  EXPECT_EQ(RenderRubric("{prompt}{prompt}{", {"x", "", ""}), "xx{");
}

}  // namespace
}  // namespace rlj
