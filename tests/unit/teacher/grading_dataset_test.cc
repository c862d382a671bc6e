// grading_dataset_test.cc: the grading data a teacher is trained on: near-miss wrong answers, the balance of
// right and wrong candidates, labels, the template, the optional answer rows, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/arithmetic_task.h"
#include "test_util.h"

namespace rlj {
namespace {

std::vector<PromptRow> Problems(int count) {
  ArithmeticTaskOptions options;
  options.train_size = count;
  options.eval_size = 0;
  options.max_operand = 999;
  options.seed = 3;
  auto split = MakeArithmeticTask(options);
  EXPECT_TRUE(split.ok()) << split.status();
  return split.ok() ? split->train : std::vector<PromptRow>{};
}

TEST(NearMissAnswer, IsWrongCloseAndWellFormed) {
  std::mt19937_64 rng(5);
  int same_length = 0;
  int within_ten_percent = 0;
  constexpr int kTrials = 4000;
  for (int i = 0; i < kTrials; ++i) {
    const int64_t answer = std::uniform_int_distribution<int64_t>(0, 1998)(rng);
    const std::string wrong = NearMissAnswer(answer, rng);
    int64_t value = -1;
    ASSERT_TRUE(absl::SimpleAtoi(wrong, &value)) << wrong;
    EXPECT_NE(value, answer);
    EXPECT_GE(value, 0) << "answer " << answer;
    EXPECT_TRUE(wrong.size() == 1 || wrong[0] != '0') << "leading zero: " << wrong;
    same_length += wrong.size() == std::to_string(answer).size() ? 1 : 0;
    within_ten_percent += std::abs(value - answer) <= std::max<int64_t>(10, answer / 10) ? 1 : 0;
  }
  // Mostly the length of the right answer (a digit dropped or repeated is the exception), and mostly close.
  EXPECT_GT(same_length, kTrials * 3 / 4);
  EXPECT_GT(within_ten_percent, kTrials / 2);
}

TEST(NearMissAnswer, NegativeAndZeroAnswers) {
  std::mt19937_64 rng(9);
  for (int i = 0; i < 500; ++i) {
    for (const int64_t answer : {int64_t{0}, int64_t{-7}, int64_t{-120}}) {
      const std::string wrong = NearMissAnswer(answer, rng);
      int64_t value = 0;
      ASSERT_TRUE(absl::SimpleAtoi(wrong, &value)) << wrong;
      EXPECT_NE(value, answer);
      EXPECT_NE(wrong, "-0");
    }
  }
}

TEST(GradingDataset, HalfRightHalfNearMissesWithLabels) {
  const std::vector<PromptRow> problems = Problems(2000);
  GradingOptions options;
  options.seed = 4;
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<PromptRow> rows, MakeGradingDataset(problems, options));
  ASSERT_EQ(rows.size(), problems.size());
  std::map<std::string, std::string> answer_of;  // "12+34=" → "46"
  for (const PromptRow& p : problems) answer_of[p.prompt] = p.reference;
  int correct = 0;
  std::set<std::string> ids;
  for (const PromptRow& row : rows) {
    EXPECT_TRUE(ids.insert(row.id).second) << "duplicate id " << row.id;
    EXPECT_EQ(row.id.rfind("grade-", 0), 0u);
    // "{prompt}{completion}?": the problem, a candidate, a question mark.
    ASSERT_EQ(row.prompt.back(), '?');
    const size_t equals = row.prompt.find('=');
    ASSERT_NE(equals, std::string::npos);
    const std::string problem = row.prompt.substr(0, equals + 1);
    const std::string candidate = row.prompt.substr(equals + 1, row.prompt.size() - equals - 2);
    ASSERT_TRUE(answer_of.count(problem)) << row.prompt;
    const bool right = candidate == answer_of[problem];
    EXPECT_EQ(row.reference, right ? "Y" : "N") << row.prompt;
    correct += right ? 1 : 0;
  }
  EXPECT_NEAR(correct, 1000, 100);  // correct_fraction 0.5
}

TEST(GradingDataset, TemplateLabelsRowsPerProblemAndAnswerRows) {
  const std::vector<PromptRow> problems = Problems(300);
  GradingOptions options;
  options.prompt_template = "Q: {prompt} A: {completion} ok?";
  options.correct_label = "yes";
  options.wrong_label = "no";
  options.correct_fraction = 0.0;  // every candidate wrong
  options.rows_per_problem = 3;
  options.include_answers = true;
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<PromptRow> rows, MakeGradingDataset(problems, options));
  ASSERT_EQ(rows.size(), 300u * 4);
  int answers = 0;
  for (const PromptRow& row : rows) {
    if (row.id.rfind("answer-", 0) == 0) {
      ++answers;
      EXPECT_EQ(row.prompt.back(), '=');  // the original problem and its answer
      continue;
    }
    EXPECT_EQ(row.prompt.rfind("Q: ", 0), 0u) << row.prompt;
    EXPECT_NE(row.prompt.find(" A: "), std::string::npos);
    EXPECT_EQ(row.reference, "no");
  }
  EXPECT_EQ(answers, 300);
  // The same seed gives the same rows.
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<PromptRow> again, MakeGradingDataset(problems, options));
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].prompt, again[i].prompt);
}

TEST(JunkAnswer, IsWrongShortAndOfEveryKind) {
  std::mt19937_64 rng(13);
  int empty = 0, answer_then_junk = 0, junk_then_answer = 0, cut_short = 0;
  constexpr int kTrials = 3000;
  for (int i = 0; i < kTrials; ++i) {
    const std::string answer = std::to_string(std::uniform_int_distribution<int>(0, 1998)(rng));
    const std::string junk = JunkAnswer(answer, rng);
    EXPECT_NE(junk, answer);
    EXPECT_LE(junk.size(), std::max<size_t>(6, answer.size() + 2)) << junk;
    if (junk.empty()) ++empty;
    if (junk.size() > answer.size() && junk.rfind(answer, 0) == 0) ++answer_then_junk;
    if (junk.size() == answer.size() + 1 && junk.substr(1) == answer) ++junk_then_answer;
    if (!junk.empty() && junk.size() < answer.size() && answer.rfind(junk, 0) == 0) ++cut_short;
  }
  // Kinds drawn with probabilities 15%, 30%, 10% and 15% (less when the answer is one digit).
  EXPECT_NEAR(empty, kTrials * 15 / 100, kTrials / 25);
  EXPECT_GT(answer_then_junk, kTrials / 4);
  EXPECT_GT(junk_then_answer, kTrials / 15);
  EXPECT_GT(cut_short, kTrials / 15);
}

TEST(GradingDataset, ReferenceInThePromptAndJunkCandidates) {
  // "{prompt}{completion}|{reference}?": the teacher compares the candidate with the right answer it is given.
  const std::vector<PromptRow> problems = Problems(2000);
  GradingOptions options;
  options.prompt_template = "{prompt}{completion}|{reference}?";
  options.junk_fraction = 0.5;
  options.seed = 6;
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<PromptRow> rows, MakeGradingDataset(problems, options));
  ASSERT_EQ(rows.size(), problems.size());
  std::map<std::string, std::string> answer_of;
  for (const PromptRow& p : problems) answer_of[p.prompt] = p.reference;
  int right = 0, empty = 0, not_a_number = 0;
  for (const PromptRow& row : rows) {
    const size_t equals = row.prompt.find('=');
    const size_t bar = row.prompt.rfind('|');
    ASSERT_NE(equals, std::string::npos);
    ASSERT_NE(bar, std::string::npos);
    ASSERT_EQ(row.prompt.back(), '?');
    const std::string problem = row.prompt.substr(0, equals + 1);
    const std::string candidate = row.prompt.substr(equals + 1, bar - equals - 1);
    const std::string reference = row.prompt.substr(bar + 1, row.prompt.size() - bar - 2);
    ASSERT_TRUE(answer_of.count(problem)) << row.prompt;
    EXPECT_EQ(reference, answer_of[problem]) << row.prompt;
    EXPECT_EQ(row.reference, candidate == reference ? "Y" : "N") << row.prompt;
    right += candidate == reference ? 1 : 0;
    empty += candidate.empty() ? 1 : 0;
    int64_t value = 0;
    not_a_number += absl::SimpleAtoi(candidate, &value) ? 0 : 1;
  }
  EXPECT_NEAR(right, 1000, 100);
  // Half the ~1000 wrong candidates are junk; 15% of junk is empty; most junk is not a plain number.
  EXPECT_NEAR(empty, 75, 35);
  EXPECT_GT(not_a_number, 250);
}

TEST(GradingDataset, CopyRowsRepeatTheReferenceAfterTheTemplatePrefix) {
  const std::vector<PromptRow> problems = Problems(50);
  GradingOptions options;
  options.prompt_template = "{prompt}{reference}|{completion}?";
  options.include_copies = true;
  RLJ_ASSERT_OK_AND_ASSIGN(std::vector<PromptRow> rows, MakeGradingDataset(problems, options));
  ASSERT_EQ(rows.size(), 100u);
  std::map<std::string, std::string> answer_of;
  for (const PromptRow& p : problems) answer_of[p.prompt] = p.reference;
  int copies = 0;
  for (const PromptRow& row : rows) {
    if (row.id.rfind("copy-", 0) != 0) continue;
    ++copies;
    // "12+34=46|" -> "46": the text before {completion}, then the reference to copy.
    const size_t equals = row.prompt.find('=');
    ASSERT_NE(equals, std::string::npos);
    const std::string& answer = answer_of[row.prompt.substr(0, equals + 1)];
    EXPECT_EQ(row.prompt, absl::StrCat(row.prompt.substr(0, equals + 1), answer, "|"));
    EXPECT_EQ(row.reference, answer);
  }
  EXPECT_EQ(copies, 50);
  GradingOptions completion_first = options;
  completion_first.prompt_template = "{prompt}{completion}|{reference}?";
  EXPECT_TRUE(testing::FailsWith(MakeGradingDataset(problems, completion_first), absl::StatusCode::kInvalidArgument,
                                 "{reference} before {completion}"));
}

TEST(GradingDataset, RejectsBadInput) {
  GradingOptions options;
  std::vector<PromptRow> not_numbers{{"r1", "what?", "blue"}};
  EXPECT_TRUE(testing::FailsWith(MakeGradingDataset(not_numbers, options), absl::StatusCode::kInvalidArgument,
                                 "row r1: the reference 'blue' is not an integer"));
  EXPECT_TRUE(testing::FailsWith(MakeGradingDataset({}, options), absl::StatusCode::kInvalidArgument, "no problems"));
  const std::vector<PromptRow> problems = Problems(5);
  GradingOptions no_slot = options;
  no_slot.prompt_template = "{prompt}?";
  EXPECT_TRUE(
      testing::FailsWith(MakeGradingDataset(problems, no_slot), absl::StatusCode::kInvalidArgument, "{completion}"));
  GradingOptions same_labels = options;
  same_labels.wrong_label = "Y";
  EXPECT_TRUE(
      testing::FailsWith(MakeGradingDataset(problems, same_labels), absl::StatusCode::kInvalidArgument, "labels"));
  GradingOptions fraction = options;
  fraction.correct_fraction = 1.5;
  EXPECT_TRUE(
      testing::FailsWith(MakeGradingDataset(problems, fraction), absl::StatusCode::kInvalidArgument, "fraction"));
  GradingOptions junk = options;
  junk.junk_fraction = -0.1;
  EXPECT_TRUE(
      testing::FailsWith(MakeGradingDataset(problems, junk), absl::StatusCode::kInvalidArgument, "junk fraction"));
}

}  // namespace
}  // namespace rlj
