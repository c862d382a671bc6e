// rule_backend_test.cc: the rule judge: exact and numeric modes, tolerance, rewards, rationales, and
// "invalid" errors (never a reward) for samples it cannot judge.
#include "judge/backends/rule_backend.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace rlj {
namespace {

v1::Sample MakeSample(const std::string& id, const std::string& completion, const std::string& reference) {
  v1::Sample sample;
  sample.set_id(id);
  sample.set_prompt("What is 23+23?");
  sample.set_completion(completion);
  sample.set_reference(reference);
  return sample;
}

v1::RuleJudgeConfig Config(v1::RuleJudgeConfig::Check mode, double tolerance = 1e-6) {
  v1::RuleJudgeConfig config;
  config.set_mode(mode);
  config.set_tolerance(tolerance);
  return config;
}

TEST(RuleBackend, NumericRightAndWrong) {
  RuleBackend backend(Config(v1::RuleJudgeConfig::numeric));
  EXPECT_EQ(backend.name(), "rule");
  EXPECT_EQ(backend.model(), "numeric");
  const std::vector<Judgement> judgements = backend.Score(
      {MakeSample("a", "23+23 = 46", "46"), MakeSample("b", "47", "46"), MakeSample("c", "I don't know", "46")});
  ASSERT_EQ(judgements.size(), 3u);

  const v1::Verdict& right = judgements[0].verdict;
  EXPECT_EQ(right.sample_id(), "a");
  EXPECT_FALSE(right.has_error());
  EXPECT_EQ(right.reward(), 1.0);
  EXPECT_EQ(right.components().at("correct"), 1.0);
  EXPECT_EQ(right.rationale(), "expected 46, got 46");

  const v1::Verdict& wrong = judgements[1].verdict;
  EXPECT_EQ(wrong.sample_id(), "b");
  EXPECT_FALSE(wrong.has_error());
  EXPECT_EQ(wrong.reward(), 0.0);
  EXPECT_EQ(wrong.components().at("correct"), 0.0);
  EXPECT_EQ(wrong.rationale(), "expected 46, got 47");

  const v1::Verdict& none = judgements[2].verdict;
  EXPECT_FALSE(none.has_error());  // a completion without a number is wrong, not unjudgeable
  EXPECT_EQ(none.reward(), 0.0);
  EXPECT_EQ(none.rationale(), "no number in completion");
}

TEST(RuleBackend, NumericToleranceAndCustomRewards) {
  v1::RuleJudgeConfig config = Config(v1::RuleJudgeConfig::numeric, 0.5);
  config.set_correct_reward(2.0);
  config.set_wrong_reward(-1.0);
  RuleBackend backend(config);
  const std::vector<Judgement> judgements =
      backend.Score({MakeSample("near", "46.4", "46"), MakeSample("edge", "45.5", "46"),
                     MakeSample("far", "46.6", "46"), MakeSample("big", "1,234,567", "1234567")});
  EXPECT_EQ(judgements[0].verdict.reward(), 2.0);
  EXPECT_EQ(judgements[1].verdict.reward(), 2.0);  // |45.5 - 46| = 0.5 <= tolerance
  EXPECT_EQ(judgements[2].verdict.reward(), -1.0);
  EXPECT_EQ(judgements[2].verdict.rationale(), "expected 46, got 46.6");
  EXPECT_EQ(judgements[3].verdict.reward(), 2.0);
  EXPECT_EQ(judgements[3].verdict.rationale(), "expected 1234567, got 1234567");
}

TEST(RuleBackend, ExactMatchTrimsButIsCaseSensitive) {
  RuleBackend backend(Config(v1::RuleJudgeConfig::exact));
  const std::vector<Judgement> judgements =
      backend.Score({MakeSample("a", "  Paris\n", "Paris"), MakeSample("b", "paris", "Paris")});
  EXPECT_EQ(judgements[0].verdict.reward(), 1.0);
  EXPECT_EQ(judgements[0].verdict.components().at("correct"), 1.0);
  EXPECT_EQ(judgements[1].verdict.reward(), 0.0);
  EXPECT_EQ(judgements[1].verdict.rationale(), "expected \"Paris\", got \"paris\"");
}

TEST(RuleBackend, UnjudgeableSamplesAreInvalidErrorsNotZero) {
  RuleBackend numeric(Config(v1::RuleJudgeConfig::numeric));
  const std::vector<Judgement> judgements = numeric.Score(
      {MakeSample("empty", "46", ""), MakeSample("blank", "46", "  \n"), MakeSample("word", "46", "forty-six")});
  for (const Judgement& judgement : judgements) {
    ASSERT_TRUE(judgement.verdict.has_error()) << judgement.verdict.sample_id();
    EXPECT_EQ(judgement.verdict.error().kind(), "invalid");
    EXPECT_EQ(judgement.verdict.error().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
    EXPECT_TRUE(judgement.verdict.components().empty());
  }
  EXPECT_NE(judgements[0].verdict.error().message().find("no reference"), std::string::npos);
  EXPECT_NE(judgements[2].verdict.error().message().find("forty-six"), std::string::npos);

  RuleBackend exact(Config(v1::RuleJudgeConfig::exact));
  const std::vector<Judgement> exact_judgements = exact.Score({MakeSample("empty", "Paris", "")});
  ASSERT_TRUE(exact_judgements[0].verdict.has_error());
  EXPECT_EQ(exact_judgements[0].verdict.error().kind(), "invalid");
}

}  // namespace
}  // namespace rlj
