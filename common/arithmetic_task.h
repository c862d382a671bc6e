// arithmetic_task.h: a verifiable task the project generates itself: "a+b=" → "c" (and "-", "*"),
// split into disjoint train and held-out eval sets.
#pragma once

#include <cstdint>
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

}  // namespace rlj
