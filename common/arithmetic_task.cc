// arithmetic_task.cc: deterministic generation of distinct arithmetic problems.
#include "common/arithmetic_task.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace rlj {

absl::StatusOr<ArithmeticSplit> MakeArithmeticTask(const ArithmeticTaskOptions& options) {
  if (options.ops.empty() || options.ops.find_first_not_of("+-*") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--ops '", options.ops, "': use one or more of + - *"));
  }
  if (options.min_operand < 0 || options.max_operand < options.min_operand) {
    return absl::InvalidArgumentError("operand range: need 0 <= min_operand <= max_operand");
  }
  if (options.train_size < 0 || options.eval_size < 0) return absl::InvalidArgumentError("sizes must be >= 0");
  const int64_t span = options.max_operand - options.min_operand + 1;
  const int64_t distinct = span * span * static_cast<int64_t>(options.ops.size());
  const int64_t wanted = static_cast<int64_t>(options.train_size) + options.eval_size;
  if (wanted > distinct) {
    return absl::InvalidArgumentError(
        absl::StrCat("asked for ", wanted, " distinct problems but the operand range only has ", distinct));
  }
  // Enumerate every problem, shuffle once, split: eval never overlaps train.
  std::vector<int64_t> codes(static_cast<size_t>(distinct));
  for (int64_t i = 0; i < distinct; ++i) codes[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(options.seed);
  std::shuffle(codes.begin(), codes.end(), rng);
  auto make_row = [&](int64_t code, const std::string& split, int index) {
    const int op_index = static_cast<int>(code % static_cast<int64_t>(options.ops.size()));
    const int64_t pair = code / static_cast<int64_t>(options.ops.size());
    const int64_t a = options.min_operand + pair / span;
    const int64_t b = options.min_operand + pair % span;
    const char op = options.ops[static_cast<size_t>(op_index)];
    const int64_t answer = op == '+' ? a + b : op == '-' ? a - b : a * b;
    return PromptRow{absl::StrCat(split, "-", index), absl::StrCat(a, std::string(1, op), b, "="), absl::StrCat(answer)};
  };
  ArithmeticSplit split;
  for (int i = 0; i < options.train_size; ++i) split.train.push_back(make_row(codes[static_cast<size_t>(i)], "train", i));
  for (int i = 0; i < options.eval_size; ++i) {
    split.eval.push_back(make_row(codes[static_cast<size_t>(options.train_size + i)], "eval", i));
  }
  return split;
}

}  // namespace rlj
