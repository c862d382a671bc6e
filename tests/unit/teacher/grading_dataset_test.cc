// grading_dataset_test.cc: the grading data a teacher is trained on: near-miss wrong answers, the balance of
// right and wrong candidates, labels, the template, the optional answer, copy and prefix-check rows, fixed-width
// problems, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
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

TEST(ArithmeticTask, FixedWidthPadsOperandsAndAnswersAndKeepsTheProblems) {
  ArithmeticTaskOptions options;
  options.train_size = 3000;
  options.eval_size = 200;
  options.max_operand = 999;
  RLJ_ASSERT_OK_AND_ASSIGN(const ArithmeticSplit plain, MakeArithmeticTask(options));
  options.fixed_width = true;
  RLJ_ASSERT_OK_AND_ASSIGN(const ArithmeticSplit fixed, MakeArithmeticTask(options));
  ASSERT_EQ(fixed.train.size(), plain.train.size());
  int padded_answers = 0;
  for (size_t i = 0; i < fixed.train.size(); ++i) {
    const PromptRow& row = fixed.train[i];
    // "321+099=" -> "0420": three digits an operand, four an answer; the same problem as the plain row.
    ASSERT_EQ(row.prompt.size(), 8u) << row.prompt;
    EXPECT_EQ(row.prompt[3], '+');
    ASSERT_EQ(row.reference.size(), 4u) << row.reference;
    int64_t a = 0, b = 0, sum = 0, plain_sum = 0;
    ASSERT_TRUE(absl::SimpleAtoi(row.prompt.substr(0, 3), &a) && absl::SimpleAtoi(row.prompt.substr(4, 3), &b));
    ASSERT_TRUE(absl::SimpleAtoi(row.reference, &sum) && absl::SimpleAtoi(plain.train[i].reference, &plain_sum));
    EXPECT_EQ(a + b, sum);
    EXPECT_EQ(sum, plain_sum);
    EXPECT_EQ(plain.train[i].prompt, absl::StrCat(a, "+", b, "="));
    padded_answers += row.reference[0] == '0' ? 1 : 0;
  }
  EXPECT_GT(padded_answers, 1000);  // about half the sums are below 1000
  EXPECT_EQ(PadNumber(-42, 4), "-0042");
  EXPECT_EQ(PadNumber(12345, 3), "12345");
}

TEST(GradingDataset, NearMissesOfFixedWidthAnswersKeepTheWidth) {
  ArithmeticTaskOptions task;
  task.train_size = 2000;
  task.eval_size = 0;
  task.max_operand = 999;
  task.fixed_width = true;
  RLJ_ASSERT_OK_AND_ASSIGN(const ArithmeticSplit split, MakeArithmeticTask(task));
  GradingOptions options;
  options.correct_fraction = 0;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<GradingCandidate> candidates, MakeGradingCandidates(split.train, options));
  int same_width = 0;
  for (const GradingCandidate& c : candidates) {
    const std::string& reference = split.train[c.problem].reference;
    EXPECT_NE(c.completion, reference);
    EXPECT_FALSE(c.correct);
    // Every near miss is at least four digits wide ("0420" -> "0430", never "430"); a repeated digit makes five.
    EXPECT_GE(c.completion.size(), 4u) << reference << " -> " << c.completion;
    same_width += c.completion.size() == 4 ? 1 : 0;
  }
  EXPECT_GT(same_width, 1600);  // most near misses are of the reference's width
}

TEST(GradingDataset, PrefixChecksSayWhetherTheReferenceBeginsWithThePrefix) {
  const std::vector<PromptRow> problems = Problems(1000);
  GradingOptions options;
  options.prompt_template = "{reference}|{completion}?";
  options.include_prefix_checks = true;
  options.junk_fraction = 0.2;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<PromptRow> rows, MakeGradingDataset(problems, options));
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<GradingCandidate> candidates, MakeGradingCandidates(problems, options));
  int checks = 0, agreeing = 0;
  for (const PromptRow& row : rows) {
    if (row.id.rfind("check-", 0) != 0) continue;
    ++checks;
    size_t index = 0;
    ASSERT_TRUE(absl::SimpleAtoi(row.id.substr(6), &index));
    ASSERT_LT(index, candidates.size());
    const GradingCandidate& c = candidates[index];
    const std::string& reference = problems[c.problem].reference;
    // "46|4~": the reference, "|", a non-empty prefix of the candidate, the marker.
    const std::string head = reference + "|";
    ASSERT_EQ(row.prompt.rfind(head, 0), 0u) << row.prompt;
    ASSERT_EQ(row.prompt.back(), '~');
    const std::string prefix = row.prompt.substr(head.size(), row.prompt.size() - head.size() - 1);
    ASSERT_FALSE(prefix.empty());
    EXPECT_EQ(c.completion.rfind(prefix, 0), 0u) << prefix << " is not a prefix of " << c.completion;
    const bool agrees = reference.rfind(prefix, 0) == 0;
    EXPECT_EQ(row.reference, agrees ? "Y" : "N") << row.prompt;
    agreeing += agrees ? 1 : 0;
  }
  // One check per candidate but the empty ones.
  int empty = 0;
  for (const GradingCandidate& c : candidates) empty += c.completion.empty() ? 1 : 0;
  EXPECT_EQ(checks, 1000 - empty);
  EXPECT_GT(agreeing, 500);  // right candidates always agree, near misses often do up to their first wrong digit
  EXPECT_LT(agreeing, checks);
  GradingOptions no_marker = options;
  no_marker.prefix_marker = "";
  EXPECT_TRUE(
      testing::FailsWith(MakeGradingDataset(problems, no_marker), absl::StatusCode::kInvalidArgument, "prefix marker"));
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
  GradingOptions answers = options;
  answers.answer_fraction = 2;
  EXPECT_TRUE(testing::FailsWith(MakeGradingCandidates(problems, answers), absl::StatusCode::kInvalidArgument,
                                 "answer fraction"));
}

TEST(GradingDataset, AnswerFractionKeepsThatShareOfAnswerRowsAndTheSameCandidates) {
  const std::vector<PromptRow> problems = Problems(2000);
  GradingOptions options;
  options.prompt_template = "{prompt}{reference}|{completion}?";
  options.include_answers = true;
  options.junk_fraction = 0.3;
  options.rows_per_problem = 2;
  options.seed = 9;
  const auto grade_rows = [](const std::vector<PromptRow>& rows) {
    std::map<std::string, std::string> by_id;  // grade-<i> -> its prompt and label
    int answers = 0;
    for (const PromptRow& row : rows) {
      if (row.id.rfind("answer-", 0) == 0) ++answers;
      if (row.id.rfind("grade-", 0) == 0) by_id[row.id] = row.prompt + " " + row.reference;
    }
    return std::make_pair(by_id, answers);
  };
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<PromptRow> all, MakeGradingDataset(problems, options));
  options.answer_fraction = 0.25;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<PromptRow> some, MakeGradingDataset(problems, options));
  const auto [all_grades, all_answers] = grade_rows(all);
  const auto [some_grades, some_answers] = grade_rows(some);
  EXPECT_EQ(all_answers, 2000);
  EXPECT_NEAR(some_answers, 500, 80);  // 4.1 standard deviations
  EXPECT_EQ(all_grades, some_grades);  // the answer rows are drawn apart from the candidates
  options.answer_fraction = 1;
  options.answer_max = 999;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<PromptRow> small, MakeGradingDataset(problems, options));
  int below_1000 = 0;
  for (const PromptRow& p : problems) below_1000 += std::stoi(p.reference) <= 999 ? 1 : 0;
  EXPECT_EQ(grade_rows(small).second, below_1000);
  EXPECT_EQ(grade_rows(small).first, all_grades);
  for (const PromptRow& row : small) {
    if (row.id.rfind("answer-", 0) == 0) EXPECT_LE(std::stoi(row.reference), 999) << row.prompt;
  }
  options.answer_max = std::numeric_limits<int64_t>::max();
  options.answer_fraction = 0;
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<PromptRow> none, MakeGradingDataset(problems, options));
  EXPECT_EQ(grade_rows(none).second, 0);

  // The candidates are those of the grade rows, in order: grade-<i> renders candidate i.
  RLJ_ASSERT_OK_AND_ASSIGN(const std::vector<GradingCandidate> candidates, MakeGradingCandidates(problems, options));
  ASSERT_EQ(candidates.size(), 4000u);
  for (size_t i = 0; i < candidates.size(); ++i) {
    const GradingCandidate& c = candidates[i];
    ASSERT_LT(c.problem, problems.size());
    EXPECT_EQ(c.problem, i / 2);
    EXPECT_EQ(c.correct, c.completion == problems[c.problem].reference);
    EXPECT_EQ(all_grades.at(absl::StrCat("grade-", i)),
              absl::StrCat(problems[c.problem].prompt, problems[c.problem].reference, "|", c.completion, "? ",
                           c.correct ? "Y" : "N"));
  }
}

}  // namespace
}  // namespace rlj
