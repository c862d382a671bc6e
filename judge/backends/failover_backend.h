// failover_backend.h: judge.failover: the primary backend scores first; samples it could not get a verdict
// for because the teacher was unreachable (timeout, HTTP errors after retries, 429s, an open circuit
// breaker, an unavailable command or remote judge) go to the secondary backend. Bad samples (parse,
// out-of-range, refusal, invalid) do not: another teacher would not make them good.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "judge/judge_backend.h"

namespace rlj {

class FailoverBackend final : public JudgeBackend {
 public:
  FailoverBackend(std::unique_ptr<JudgeBackend> primary, std::unique_ptr<JudgeBackend> secondary);

  std::string name() const override { return primary_->name(); }
  std::string model() const override { return primary_->model(); }
  // Verdicts from the secondary carry its name in Verdict.backend and "failover" in their components.
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;
  void CollectStatus(v1::JudgeStatus* status) const override;
  absl::Status CheckAtStart(const JudgeStartContext& context) override;

  int64_t failed_over() const { return failed_over_.load(); }

 private:
  std::unique_ptr<JudgeBackend> primary_;
  std::unique_ptr<JudgeBackend> secondary_;
  std::atomic<int64_t> failed_over_{0};
};

}  // namespace rlj
