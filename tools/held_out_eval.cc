// held_out_eval.cc: greedy answers, accuracy, and their reward from the rule or the eval judge.
#include "tools/held_out_eval.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "common/tokenizer/tokenizer.h"
#include "judge/backend_registry.h"
#include "judge/judge_backend.h"

namespace rlj {

HeldOutEvaluator::~HeldOutEvaluator() = default;

absl::StatusOr<std::unique_ptr<HeldOutEvaluator>> HeldOutEvaluator::Create(const v1::RunConfig& config,
                                                                           std::vector<PromptRow> rows) {
  std::unique_ptr<HeldOutEvaluator> evaluator(new HeldOutEvaluator());
  evaluator->config_ = config;
  evaluator->rows_ = std::move(rows);
  evaluator->options_ = EvalOptionsFromConfig(config);
  RLJ_ASSIGN_OR_RETURN(evaluator->tokenizer_, MakeTokenizer(config.tokenizer()));
  if (!config.eval().judge().empty()) {
    JudgeBackendDeps deps;
    deps.section = "eval.judge";
    auto judge = MakeNamedJudgeBackend(config.judge(), config.eval().judge(), "eval", deps, /*allow_ensemble=*/true);
    if (!judge.ok()) return Annotate(judge.status(), absl::StrCat("eval.judge '", config.eval().judge(), "'"));
    evaluator->judge_ = std::move(*judge);
  }
  return evaluator;
}

absl::StatusOr<std::pair<double, double>> HeldOutEvaluator::Reward(const EvalResult& result, int64_t step) {
  if (judge_ == nullptr) {
    const v1::RuleJudgeConfig& rule = config_.judge().rule();
    double sum = 0;
    for (const EvalExample& e : result.examples) sum += e.correct ? rule.correct_reward() : rule.wrong_reward();
    return std::make_pair(result.examples.empty() ? std::nan("") : sum / static_cast<double>(result.examples.size()),
                          0.0);
  }
  std::vector<v1::Sample> samples;
  samples.reserve(result.examples.size());
  for (size_t i = 0; i < result.examples.size(); ++i) {
    const EvalExample& e = result.examples[i];
    v1::Sample& sample = samples.emplace_back();
    sample.set_id(absl::StrCat("eval-v", step, "/", i));
    sample.set_prompt_id(e.prompt_id);
    sample.set_prompt(e.prompt);
    sample.set_completion(e.completion);
    sample.set_reference(e.reference);
    sample.set_run(config_.name());
    sample.set_actor("eval");
    sample.set_policy_version(step);
  }
  double sum = 0, cost = 0;
  int scored = 0, failed = 0;
  for (const Judgement& judgement : judge_->Score(samples)) {
    cost += judgement.verdict.cost_usd();
    if (judgement.verdict.has_error()) {
      ++failed;
      continue;
    }
    sum += judgement.verdict.reward();
    ++scored;
  }
  if (failed > 0)
    log::Warn("eval at step {}: {} of {} verdicts of eval.judge failed (left out of the reward)", step, failed,
              samples.size());
  return std::make_pair(scored > 0 ? sum / scored : std::nan(""), cost);
}

absl::StatusOr<logs::EvalPoint> HeldOutEvaluator::Evaluate(Transformer& model, int64_t step, const std::string& kind,
                                                           EvalResult* details) {
  const auto start = std::chrono::steady_clock::now();
  RLJ_ASSIGN_OR_RETURN(EvalResult result, EvaluateAccuracy(model, *tokenizer_, rows_, options_));
  RLJ_ASSIGN_OR_RETURN(const auto reward, Reward(result, step));
  logs::EvalPoint point;
  point.kind = kind;
  point.step = step;
  point.accuracy = result.accuracy();
  point.reward = reward.first;
  point.cost_usd = reward.second;
  point.prompts = result.total;
  point.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  point.unix_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (details != nullptr) *details = std::move(result);
  return point;
}

}  // namespace rlj
