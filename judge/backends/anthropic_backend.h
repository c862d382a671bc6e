// anthropic_backend.h: the `anthropic` judge: a teacher behind the Anthropic Messages API
// (POST {base_url}/messages, x-api-key and anthropic-version headers) grading each completion with a rubric.
// Same HTTP machinery (TeacherClient) and rubric reading as the openai judge; also a ChatTeacher for the
// ensemble's group ranking.
#pragma once

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

class AnthropicBackend final : public JudgeBackend, public ChatTeacher {
 public:
  // The checks of its section (`section` names it in messages), without starting anything; Create runs them.
  static absl::Status Validate(const v1::JudgeConfig& config, const std::string& section);
  // Fails when the api_key_env variable (default ANTHROPIC_API_KEY) is unset or empty, naming it.
  static absl::StatusOr<std::unique_ptr<AnthropicBackend>> Create(const v1::JudgeConfig& config,
                                                                  const JudgeBackendDeps& deps);
  ~AnthropicBackend() override;

  std::string name() const override { return label_; }
  std::string model() const override { return config_.model(); }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;
  void CollectStatus(v1::JudgeStatus* status) const override { client_->CollectStatus(status); }

  ChatReplies AskChat(const std::vector<ChatQuestion>& questions, SteadyTime deadline) override;
  std::string teacher_model() const override { return config_.model(); }

 private:
  AnthropicBackend(const v1::JudgeConfig& config, std::string label, std::unique_ptr<TeacherClient> client,
                   RubricScorer rubric);

  v1::AnthropicJudgeConfig config_;
  std::string label_;
  std::string url_;
  std::chrono::milliseconds call_timeout_;
  std::unique_ptr<TeacherClient> client_;
  RubricScorer rubric_;
  ChatWireFormat chat_format_;
};

// Reads a Messages API response: the text blocks of content, refusals (stop_reason "refusal"), usage.
ChatAnswer ReadAnthropicMessage(const std::string& body);

}  // namespace rlj
