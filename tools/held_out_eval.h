// held_out_eval.h: one held-out evaluation of a policy for `rlj run`: greedy answers to the held-out prompts,
// their accuracy against the references, and their mean reward: the rule judge's (judge.rule's rewards for
// a match and a miss) by default, or that of the backend eval.judge names (the teacher, say), whose spend is
// counted. Used before RL, every eval.every_steps steps and after RL, so the curve's points compare.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "actor/evaluator.h"
#include "common/dataset.h"
#include "logs/eval_curve.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class JudgeBackend;
class Tokenizer;
class Transformer;

class HeldOutEvaluator {
 public:
  // `config` as the judges got it (a started teacher's base_url filled in); `rows` the prompts to evaluate.
  static absl::StatusOr<std::unique_ptr<HeldOutEvaluator>> Create(const v1::RunConfig& config,
                                                                  std::vector<PromptRow> rows);
  ~HeldOutEvaluator();

  // Evaluates `model` as the policy of `step`; `details` (optional) gets every answer.
  absl::StatusOr<logs::EvalPoint> Evaluate(Transformer& model, int64_t step, const std::string& kind,
                                           EvalResult* details = nullptr);

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  size_t prompts() const { return rows_.size(); }

 private:
  HeldOutEvaluator() = default;
  // Mean reward of the answers and the spend, from the eval judge (or the rule rewards without one).
  absl::StatusOr<std::pair<double, double>> Reward(const EvalResult& result, int64_t step);

  v1::RunConfig config_;
  std::vector<PromptRow> rows_;
  EvalOptions options_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<JudgeBackend> judge_;  // null: the rule rewards
};

}  // namespace rlj
