// openai_backend.h: the `openai` judge: a teacher behind any OpenAI-compatible API (OpenAI, vLLM, SGLang,
// Ollama, llama.cpp server, `rlj teacher`), in one of three modes:
//   rubric      POST /chat/completions with the rubric; the score parsed from the answer (JSON or pattern)
//               and mapped from [score_min, score_max] onto [reward_min, reward_max];
//   label       POST /chat/completions with logprobs; the reward is the expected value of judge.openai.labels
//               under the teacher's top_logprobs of its first answer token (dense and calibrated);
//   likelihood  POST /completions with echo and logprobs; the reward is the teacher's mean log-probability
//               of the student's completion tokens (an on-policy distillation signal).
// Requests go through a TeacherClient (cache, limits, retries, breaker, accounting); the bodies are read by
// openai_response.h.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/backend_registry.h"
#include "judge/chat_teacher.h"
#include "judge/judge_backend.h"
#include "judge/rubric_scorer.h"
#include "judge/teacher_client.h"
#include "rlj/v1/config.pb.h"

namespace rlj {

class OpenAIBackend final : public JudgeBackend, public ChatTeacher {
 public:
  // The checks of its section (`section` names it in messages), without starting anything; Create runs them.
  static absl::Status Validate(const v1::JudgeConfig& config, const std::string& section);
  // Uses config.openai() and config.timeout_ms() (the actors' deadline for one Score call) as every sample's
  // overall deadline, retries included. Fails when api_key_env names a variable that is unset or empty,
  // naming it; without api_key_env no Authorization header is sent (local servers).
  static absl::StatusOr<std::unique_ptr<OpenAIBackend>> Create(const v1::JudgeConfig& config,
                                                               const JudgeBackendDeps& deps);
  ~OpenAIBackend() override;

  std::string name() const override { return label_; }
  std::string model() const override { return config_.model(); }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;
  // Distill mode: the teacher scores token ids with the student's vocabulary, and can at all.
  absl::Status CheckAtStart(const JudgeStartContext& context) override;
  void CollectStatus(v1::JudgeStatus* status) const override { client_->CollectStatus(status); }

  ChatReplies AskChat(const std::vector<ChatQuestion>& questions, SteadyTime deadline) override;
  std::string teacher_model() const override { return config_.model(); }

 private:
  OpenAIBackend(const v1::JudgeConfig& config, std::string label, std::unique_ptr<TeacherClient> client,
                std::optional<RubricScorer> rubric);

  std::vector<Judgement> ScoreRubric(const std::vector<v1::Sample>& samples, SteadyTime deadline);
  std::vector<Judgement> ScoreLabels(const std::vector<v1::Sample>& samples, SteadyTime deadline);
  std::vector<Judgement> ScoreLikelihood(const std::vector<v1::Sample>& samples, SteadyTime deadline);
  std::vector<Judgement> ScoreDistill(const std::vector<v1::Sample>& samples, SteadyTime deadline);
  // One distill request's answer into the verdicts of its samples (judgements[i] for i in `asked`).
  bool ReadDistillAnswer(const TeacherAnswer& answer, const std::vector<v1::Sample>& samples,
                         const std::vector<size_t>& asked, std::vector<Judgement>* judgements);

  v1::OpenAIJudgeConfig config_;
  v1::OpenAIMode::Mode mode_;
  std::string label_;
  std::string base_url_;
  std::chrono::milliseconds call_timeout_;
  std::unique_ptr<TeacherClient> client_;
  std::optional<RubricScorer> rubric_;
  std::map<std::string, double> labels_;  // label mode: judge.openai.labels
  ChatWireFormat chat_format_;
  std::vector<std::pair<std::string, std::string>> headers_;  // the requests' headers (distill's start check)
  std::string section_;                                       // judge.openai or judge.backends.<name>.openai
};

}  // namespace rlj
