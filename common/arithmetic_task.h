// arithmetic_task.h: a verifiable task the project generates itself: "a+b=" → "c" (and "-", "*"),
// split into disjoint train and held-out eval sets, and the grading data that teaches a teacher model to
// judge answers to it ("12+34=46?" → "Y", "12+34=47?" → "N"; or, given the reference as LLM judges are,
// "12+34=46|46?" → "Y", "12+34=47|46?" → "N").
#pragma once

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dataset.h"

namespace rlj {

struct ArithmeticTaskOptions {
  int train_size = 20000;
  int eval_size = 500;
  int min_operand = 0;
  int max_operand = 99;
  std::string ops = "+";  // any of "+-*"
  // Fixed width: every operand zero-padded to the digits of max_operand and every answer to the digits of the
  // largest answer ("635+043=" -> "0678"). Each digit then sits at the same place in every prompt and answer, which
  // a small model aligns far sooner, and a grader compares a candidate with the reference digit by digit.
  bool fixed_width = false;
  uint64_t seed = 1;
};

struct ArithmeticSplit {
  std::vector<PromptRow> train;
  std::vector<PromptRow> eval;  // no prompt of eval appears in train
};

// Samples distinct problems; fails when the operand range has fewer distinct problems than requested.
absl::StatusOr<ArithmeticSplit> MakeArithmeticTask(const ArithmeticTaskOptions& options);

// How to turn problems with integer answers into grading rows for a teacher.
struct GradingOptions {
  // The grading prompt; {prompt}, {completion} and {reference} are replaced by the problem, a candidate answer
  // and the right answer. The judge's label mode must render the same text for the teacher to recognise it.
  std::string prompt_template = "{prompt}{completion}?";
  std::string correct_label = "Y";  // the reference of a row whose candidate is right
  std::string wrong_label = "N";
  double correct_fraction = 0.5;  // share of rows with the right answer as the candidate
  double junk_fraction = 0.0;     // share of wrong candidates that are junk (JunkAnswer), not near misses
  int rows_per_problem = 1;       // grading rows per problem (each with its own candidate)
  bool include_answers = false;   // also keep problems as plain prompt → answer rows
  double answer_fraction = 1.0;   // with include_answers: the share of problems that get an answer row (the
                                  // fewer, the worse a teacher trained on the rows solves the task itself)
  // With include_answers: answer rows only for problems whose answer is at most this (a teacher never shown a
  // four-digit sum does not write one, though it grades them against the reference as well as the rest).
  int64_t answer_max = std::numeric_limits<int64_t>::max();
  // Also a "copy-<i>" row per problem: the template rendered up to {completion} → the reference ("12+34=46|" →
  // "46" for "{prompt}{reference}|{completion}?"). Every token of it teaches the teacher where the candidate's
  // characters are to match the reference's, which a Y/N label alone teaches slowly. The template must put
  // {reference} before {completion}.
  bool include_copies = false;
  // Also a "check-<i>" row per candidate: the template rendered up to {completion}, a prefix of the candidate
  // (1 to all of its characters), then prefix_marker → correct_label when the reference begins with that prefix,
  // else wrong_label ("12+34=46|4~" → "Y", "12+34=46|47~" → "N"). Each teaches one more character of the digit-by-
  // digit comparison that the grade rows' single label at the end teaches slowly. Needs {reference} before
  // {completion}, like copies.
  bool include_prefix_checks = false;
  std::string prefix_marker = "~";
  uint64_t seed = 1;
};

// One candidate answer to a problem, right or wrong, in the order the grading rows draw them.
struct GradingCandidate {
  size_t problem = 0;      // index into the problems
  std::string completion;  // the candidate answer
  bool correct = false;    // equal to the problem's reference
};

// The candidates of the grading rows MakeGradingDataset makes from the same problems and options, unshuffled
// (e.g. to write them as canaries: quality.canary_path). Errors as MakeGradingDataset's.
absl::StatusOr<std::vector<GradingCandidate>> MakeGradingCandidates(const std::vector<PromptRow>& problems,
                                                                    const GradingOptions& options);

// Grading rows "grade-<i>" (and "answer-<i>", "copy-<i>", "check-<i>" with include_answers, include_copies,
// include_prefix_checks), shuffled. Each
// problem's reference must be an integer; wrong candidates are near misses of it (NearMissAnswer), zero-padded to
// the reference's width when the reference is ("0678" -> "0668"). Errors name the row.
absl::StatusOr<std::vector<PromptRow>> MakeGradingDataset(const std::vector<PromptRow>& problems,
                                                          const GradingOptions& options);

// `value` with its magnitude zero-padded to `width` digits ("-" before it when negative).
std::string PadNumber(int64_t value, size_t width);

// A wrong answer close to `answer`, the kind a half-trained model writes: one or two digits changed, off by
// a small amount or by a power of ten (a carry error), or a digit dropped or repeated. Never equal to
// `answer`, never negative when `answer` is not, no leading zeros.
std::string NearMissAnswer(int64_t answer, std::mt19937_64& rng);

// A wrong answer of the kind that games a judge that only skims: empty, the right answer with junk after
// or before it, the right answer cut short, or a random string of digits and symbols. At most
// max(6, answer length + 2) bytes (a student's completion is short); never equal to `answer`.
std::string JunkAnswer(const std::string& answer, std::mt19937_64& rng);

}  // namespace rlj
