// evaluator.h: held-out accuracy of a student: greedy completions checked against references with the
// rule judge's match settings (exact or numeric).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dataset.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class Transformer;
class Tokenizer;

struct EvalOptions {
  int max_new_tokens = 32;
  int batch_size = 64;
  std::vector<std::string> stop_strings;
  v1::RuleJudgeConfig::Check match_mode = v1::RuleJudgeConfig::numeric;  // exact, else numeric
  double tolerance = 1e-6;
};

struct EvalExample {
  std::string prompt_id;
  std::string prompt;
  std::string completion;
  std::string reference;
  bool correct = false;
};

struct EvalResult {
  int total = 0;
  int correct = 0;
  double accuracy() const { return total == 0 ? 0.0 : static_cast<double>(correct) / total; }
  double mean_completion_tokens = 0;
  std::vector<EvalExample> examples;  // every row, in order
};

// Options from a run config: eval.* with sampling.* and judge.rule.* fallbacks.
EvalOptions EvalOptionsFromConfig(const v1::RunConfig& config);

// Rows without a reference are an error (accuracy needs one).
absl::StatusOr<EvalResult> EvaluateAccuracy(Transformer& model, const Tokenizer& tokenizer,
                                            const std::vector<PromptRow>& rows, const EvalOptions& options);

}  // namespace rlj
