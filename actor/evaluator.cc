// evaluator.cc: batched greedy decoding of held-out prompts and answer matching.
#include "actor/evaluator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/answer_match.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "model/sampler.h"

namespace rlj {

EvalOptions EvalOptionsFromConfig(const v1::RunConfig& config) {
  EvalOptions options;
  options.max_new_tokens =
      config.eval().max_new_tokens() > 0 ? config.eval().max_new_tokens() : config.sampling().max_new_tokens();
  options.batch_size = config.eval().batch_size();
  options.stop_strings.assign(config.sampling().stop().begin(), config.sampling().stop().end());
  options.match_mode = config.judge().rule().mode();
  options.tolerance = config.judge().rule().tolerance();
  return options;
}

absl::StatusOr<EvalResult> EvaluateAccuracy(Transformer& model, const Tokenizer& tokenizer,
                                            const std::vector<PromptRow>& rows, const EvalOptions& options) {
  for (const PromptRow& row : rows) {
    if (row.reference.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("eval row \"", row.id, "\" has no reference; accuracy needs one"));
    }
  }
  SamplingOptions sampling;
  sampling.temperature = 0;  // greedy
  sampling.max_new_tokens = options.max_new_tokens;
  sampling.stop_strings = options.stop_strings;
  EvalResult result;
  int64_t completion_tokens = 0;
  for (size_t begin = 0; begin < rows.size(); begin += static_cast<size_t>(options.batch_size)) {
    const size_t end = std::min(rows.size(), begin + static_cast<size_t>(options.batch_size));
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i = begin; i < end; ++i) prompts.push_back(tokenizer.EncodePrompt(rows[i].prompt));
    RLJ_ASSIGN_OR_RETURN(std::vector<SampledCompletion> completions,
                         SampleCompletions(model, tokenizer, prompts, sampling));
    for (size_t i = begin; i < end; ++i) {
      const SampledCompletion& completion = completions[i - begin];
      EvalExample example{rows[i].id, rows[i].prompt, completion.text, rows[i].reference, false};
      example.correct = options.match_mode == v1::RuleJudgeConfig::exact
                            ? ExactMatch(completion.text, rows[i].reference)
                            : NumericMatch(completion.text, rows[i].reference, options.tolerance);
      result.correct += example.correct ? 1 : 0;
      completion_tokens += static_cast<int64_t>(completion.tokens.size());
      result.examples.push_back(std::move(example));
    }
  }
  result.total = static_cast<int>(rows.size());
  result.mean_completion_tokens = rows.empty() ? 0.0 : static_cast<double>(completion_tokens) / rows.size();
  return result;
}

}  // namespace rlj
