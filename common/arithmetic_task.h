// arithmetic_task.h: a verifiable task the project generates itself: "a+b=" → "c" (and "-", "*"),
// split into disjoint train and held-out eval sets, and the grading data that teaches a teacher model to
// judge answers to it ("12+34=46?" → "Y", "12+34=47?" → "N"; or, given the reference as LLM judges are,
// "12+34=46|46?" → "Y", "12+34=47|46?" → "N").
#pragma once

#include <cstdint>
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
  bool include_answers = false;   // also keep every problem as a plain prompt → answer row
  // Also a "copy-<i>" row per problem: the template rendered up to {completion} → the reference ("12+34=46|" →
  // "46" for "{prompt}{reference}|{completion}?"). Every token of it teaches the teacher where the candidate's
  // characters are to match the reference's, which a Y/N label alone teaches slowly. The template must put
  // {reference} before {completion}.
  bool include_copies = false;
  uint64_t seed = 1;
};

// Grading rows "grade-<i>" (and "answer-<i>", "copy-<i>" with include_answers, include_copies), shuffled. Each
// problem's reference must be an integer; wrong candidates are near misses of it (NearMissAnswer). Errors name the row.
absl::StatusOr<std::vector<PromptRow>> MakeGradingDataset(const std::vector<PromptRow>& problems,
                                                          const GradingOptions& options);

// A wrong answer close to `answer`, the kind a half-trained model writes: one or two digits changed, off by
// a small amount or by a power of ten (a carry error), or a digit dropped or repeated. Never equal to
// `answer`, never negative when `answer` is not, no leading zeros.
std::string NearMissAnswer(int64_t answer, std::mt19937_64& rng);

// A wrong answer of the kind that games a judge that only skims: empty, the right answer with junk after
// or before it, the right answer cut short, or a random string of digits and symbols. At most
// max(6, answer length + 2) bytes (a student's completion is short); never equal to `answer`.
std::string JunkAnswer(const std::string& answer, std::mt19937_64& rng);

}  // namespace rlj
