// arithmetic_task.cc: deterministic generation of distinct arithmetic problems and of grading rows.
#include "common/arithmetic_task.h"

#include <algorithm>
#include <cstdlib>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"

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
  const size_t operand_width = options.fixed_width ? absl::StrCat(options.max_operand).size() : 0;
  size_t answer_width = 0;
  if (options.fixed_width) {
    const int64_t lo = options.min_operand, hi = options.max_operand;
    for (const char op : options.ops) {
      const int64_t largest = op == '+' ? 2 * hi : op == '-' ? std::max(hi - lo, lo - hi) : hi * hi;
      answer_width = std::max(answer_width, absl::StrCat(largest).size());
    }
  }
  auto make_row = [&](int64_t code, const std::string& split, int index) {
    const int op_index = static_cast<int>(code % static_cast<int64_t>(options.ops.size()));
    const int64_t pair = code / static_cast<int64_t>(options.ops.size());
    const int64_t a = options.min_operand + pair / span;
    const int64_t b = options.min_operand + pair % span;
    const char op = options.ops[static_cast<size_t>(op_index)];
    const int64_t answer = op == '+' ? a + b : op == '-' ? a - b : a * b;
    return PromptRow{absl::StrCat(split, "-", index),
                     absl::StrCat(PadNumber(a, operand_width), std::string(1, op), PadNumber(b, operand_width), "="),
                     PadNumber(answer, answer_width)};
  };
  ArithmeticSplit split;
  for (int i = 0; i < options.train_size; ++i)
    split.train.push_back(make_row(codes[static_cast<size_t>(i)], "train", i));
  for (int i = 0; i < options.eval_size; ++i) {
    split.eval.push_back(make_row(codes[static_cast<size_t>(options.train_size + i)], "eval", i));
  }
  return split;
}

namespace {

// Uniform integer in [lo, hi].
int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// The digits of |value| with one or more of them changed, a digit dropped or repeated; never a leading
// zero unless the result is the single digit 0.
std::string MutateDigits(const std::string& digits, std::mt19937_64& rng) {
  std::string out = digits;
  const int64_t n = static_cast<int64_t>(out.size());
  const int64_t kind = Uniform(rng, 0, 99);
  if (kind < 70 || n == 1) {
    // Change one digit (70%) or two (when there are two to change, 1 in 7 of these).
    const int changes = (n >= 2 && Uniform(rng, 0, 6) == 0) ? 2 : 1;
    std::vector<int64_t> positions(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) positions[static_cast<size_t>(i)] = i;
    std::shuffle(positions.begin(), positions.end(), rng);
    for (int c = 0; c < changes; ++c) {
      const auto position = static_cast<size_t>(positions[static_cast<size_t>(c)]);
      const int lowest = (position == 0 && n > 1) ? 1 : 0;
      char digit = out[position];
      while (digit == out[position]) digit = static_cast<char>('0' + Uniform(rng, lowest, 9));
      out[position] = digit;
    }
  } else if (kind < 85) {
    // Drop a digit (the number gets shorter; the leading digit stays non-zero).
    const auto position = static_cast<size_t>(Uniform(rng, 0, n - 1));
    out.erase(position, 1);
    while (out.size() > 1 && out[0] == '0') out.erase(0, 1);
  } else {
    // Repeat a digit.
    const auto position = static_cast<size_t>(Uniform(rng, 0, n - 1));
    out.insert(position, 1, out[position]);
  }
  return out;
}

}  // namespace

std::string PadNumber(int64_t value, size_t width) {
  std::string digits = absl::StrCat(value < 0 ? -value : value);
  if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
  return value < 0 ? "-" + digits : digits;
}

std::string NearMissAnswer(int64_t answer, std::mt19937_64& rng) {
  const bool negative = answer < 0;
  const int64_t magnitude = negative ? -answer : answer;
  const std::string digits = std::to_string(magnitude);
  while (true) {
    int64_t candidate = magnitude;
    const int64_t kind = Uniform(rng, 0, 99);
    if (kind < 60) {
      const std::string mutated = MutateDigits(digits, rng);
      if (!absl::SimpleAtoi(mutated, &candidate)) continue;
    } else if (kind < 80) {
      candidate = magnitude + (Uniform(rng, 0, 1) == 0 ? -1 : 1) * Uniform(rng, 1, 3);  // off by a little
    } else {
      // Off by a power of ten below the number's size: a carry dropped or added.
      int64_t power = 1;
      const int64_t exponent = Uniform(rng, 1, std::max<int64_t>(1, static_cast<int64_t>(digits.size()) - 1));
      for (int64_t e = 0; e < exponent; ++e) power *= 10;
      candidate = magnitude + (Uniform(rng, 0, 1) == 0 ? -power : power);
    }
    if (candidate == magnitude || candidate < 0) continue;
    return negative && candidate != 0 ? absl::StrCat("-", candidate) : absl::StrCat(candidate);
  }
}

std::string JunkAnswer(const std::string& answer, std::mt19937_64& rng) {
  static constexpr char kJunk[] = "0123456789+-=|? \nx";
  auto junk_char = [&rng]() { return kJunk[Uniform(rng, 0, static_cast<int64_t>(sizeof(kJunk)) - 2)]; };
  while (true) {
    std::string out;
    const int64_t kind = Uniform(rng, 0, 99);
    if (kind < 15) {
      // Nothing at all.
    } else if (kind < 45) {
      out = answer;  // the right answer with one or two characters after it
      for (int64_t i = Uniform(rng, 1, 2); i > 0; --i) out.push_back(junk_char());
    } else if (kind < 55) {
      out = std::string(1, junk_char()) + answer;  // ... or before it
    } else if (kind < 70 && answer.size() > 1) {
      out = answer.substr(0, static_cast<size_t>(Uniform(rng, 1, static_cast<int64_t>(answer.size()) - 1)));
    } else {
      for (int64_t i = Uniform(rng, 1, 6); i > 0; --i) out.push_back(junk_char());
    }
    if (out != answer) return out;
  }
}

namespace {

absl::Status CheckGradingOptions(const std::vector<PromptRow>& problems, const GradingOptions& options) {
  if (options.prompt_template.find("{completion}") == std::string::npos) {
    return absl::InvalidArgumentError("the grading template must contain {completion}");
  }
  if (options.correct_label.empty() || options.wrong_label.empty() || options.correct_label == options.wrong_label) {
    return absl::InvalidArgumentError("the correct and wrong labels must be two different non-empty strings");
  }
  if (!(options.correct_fraction >= 0 && options.correct_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("correct fraction must be in [0, 1], got ", options.correct_fraction));
  }
  if (!(options.junk_fraction >= 0 && options.junk_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("junk fraction must be in [0, 1], got ", options.junk_fraction));
  }
  if (!(options.answer_fraction >= 0 && options.answer_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("answer fraction must be in [0, 1], got ", options.answer_fraction));
  }
  if (options.rows_per_problem < 1) return absl::InvalidArgumentError("rows per problem must be >= 1");
  const std::string before_completion = options.prompt_template.substr(0, options.prompt_template.find("{completion}"));
  if ((options.include_copies || options.include_prefix_checks) &&
      before_completion.find("{reference}") == std::string::npos) {
    return absl::InvalidArgumentError("copy and check rows need a template with {reference} before {completion}");
  }
  if (options.include_prefix_checks && options.prefix_marker.empty()) {
    return absl::InvalidArgumentError("check rows need a non-empty prefix marker");
  }
  if (problems.empty()) return absl::InvalidArgumentError("no problems to grade");
  return absl::OkStatus();
}

// rows_per_problem candidates per problem, drawn from `rng` in problem order.
absl::StatusOr<std::vector<GradingCandidate>> DrawCandidates(const std::vector<PromptRow>& problems,
                                                             const GradingOptions& options, std::mt19937_64& rng) {
  std::bernoulli_distribution pick_correct(options.correct_fraction);
  std::bernoulli_distribution pick_junk(options.junk_fraction);
  // Zero-padded references ("0678": any with a leading zero) get near misses of their width ("0668", "1678"), as
  // a student of that format writes them.
  size_t padded_width = 0;
  for (const PromptRow& problem : problems) {
    if (problem.reference.empty()) continue;
    const std::string& digits = problem.reference[0] == '-' ? problem.reference.substr(1) : problem.reference;
    if (digits.size() > 1 && digits[0] == '0') padded_width = std::max(padded_width, digits.size());
  }
  std::vector<GradingCandidate> candidates;
  candidates.reserve(problems.size() * static_cast<size_t>(options.rows_per_problem));
  for (size_t p = 0; p < problems.size(); ++p) {
    const PromptRow& problem = problems[p];
    int64_t answer = 0;
    if (!absl::SimpleAtoi(problem.reference, &answer)) {
      return absl::InvalidArgumentError(absl::StrCat("row ", problem.id, ": the reference '", problem.reference,
                                                     "' is not an integer; grading rows need integer answers"));
    }
    const auto near_miss = [&]() {
      std::string miss = NearMissAnswer(answer, rng);
      int64_t value = 0;
      return padded_width > 0 && absl::SimpleAtoi(miss, &value) ? PadNumber(value, padded_width) : miss;
    };
    for (int r = 0; r < options.rows_per_problem; ++r) {
      const bool correct = pick_correct(rng);
      std::string completion = correct          ? problem.reference
                               : pick_junk(rng) ? JunkAnswer(problem.reference, rng)
                                                : near_miss();
      candidates.push_back(GradingCandidate{p, std::move(completion), correct});
    }
  }
  return candidates;
}

}  // namespace

absl::StatusOr<std::vector<GradingCandidate>> MakeGradingCandidates(const std::vector<PromptRow>& problems,
                                                                    const GradingOptions& options) {
  RLJ_RETURN_IF_ERROR(CheckGradingOptions(problems, options));
  std::mt19937_64 rng(options.seed);
  return DrawCandidates(problems, options, rng);
}

absl::StatusOr<std::vector<PromptRow>> MakeGradingDataset(const std::vector<PromptRow>& problems,
                                                          const GradingOptions& options) {
  RLJ_RETURN_IF_ERROR(CheckGradingOptions(problems, options));
  std::mt19937_64 rng(options.seed);
  RLJ_ASSIGN_OR_RETURN(const std::vector<GradingCandidate> candidates, DrawCandidates(problems, options, rng));
  const auto render = [&](const std::string& text, const PromptRow& problem, const std::string& completion) {
    return absl::StrReplaceAll(
        text, {{"{prompt}", problem.prompt}, {"{completion}", completion}, {"{reference}", problem.reference}});
  };
  std::vector<PromptRow> rows;
  rows.reserve(candidates.size() + problems.size() * 2);
  for (size_t i = 0; i < candidates.size(); ++i) {
    const GradingCandidate& c = candidates[i];
    rows.push_back(PromptRow{absl::StrCat("grade-", i),
                             render(options.prompt_template, problems[c.problem], c.completion),
                             c.correct ? options.correct_label : options.wrong_label});
  }
  const std::string before_completion = options.prompt_template.substr(0, options.prompt_template.find("{completion}"));
  // Answer rows and check prefixes are drawn from streams of their own: the candidates stay those of
  // MakeGradingCandidates whatever these options.
  std::mt19937_64 answer_rng(options.seed ^ 0x9e3779b97f4a7c15ULL);
  std::mt19937_64 prefix_rng(options.seed ^ 0x5851f42d4c957f2dULL);
  std::bernoulli_distribution pick_answer(options.answer_fraction);
  for (size_t i = 0; options.include_prefix_checks && i < candidates.size(); ++i) {
    const GradingCandidate& c = candidates[i];
    if (c.completion.empty()) continue;
    const PromptRow& problem = problems[c.problem];
    const auto length = static_cast<size_t>(Uniform(prefix_rng, 1, static_cast<int64_t>(c.completion.size())));
    const std::string prefix = c.completion.substr(0, length);
    const bool agrees = problem.reference.compare(0, length, prefix) == 0;
    rows.push_back(PromptRow{absl::StrCat("check-", i),
                             render(before_completion, problem, "") + prefix + options.prefix_marker,
                             agrees ? options.correct_label : options.wrong_label});
  }
  int64_t answer_index = 0;
  int64_t copy_index = 0;
  for (const PromptRow& problem : problems) {
    int64_t answer = 0;
    const bool small_enough = absl::SimpleAtoi(problem.reference, &answer) && answer <= options.answer_max;
    if (options.include_answers && small_enough && (options.answer_fraction >= 1 || pick_answer(answer_rng))) {
      rows.push_back(PromptRow{absl::StrCat("answer-", answer_index++), problem.prompt, problem.reference});
    }
    if (options.include_copies) {
      rows.push_back(
          PromptRow{absl::StrCat("copy-", copy_index++), render(before_completion, problem, ""), problem.reference});
    }
  }
  std::shuffle(rows.begin(), rows.end(), rng);
  return rows;
}

}  // namespace rlj
