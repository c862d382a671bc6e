// remote_backend.h: the `remote` judge: forwards samples to any service implementing rlj.v1.Judge/Score
// (written in any language; examples/ has one in Python), in calls of at most max_batch samples, each with a
// deadline. A failed call is an error on each of its samples (timeout or unavailable), never a reward.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "judge/backend_registry.h"
#include "judge/judge_backend.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/judge.grpc.pb.h"

namespace rlj {

class RemoteBackend final : public JudgeBackend {
 public:
  // The checks of its section (`section` names it in messages), without starting anything; Create runs them.
  static absl::Status Validate(const v1::RemoteJudgeConfig& config, const std::string& section);
  static absl::StatusOr<std::unique_ptr<RemoteBackend>> Create(const v1::RemoteJudgeConfig& config,
                                                               const JudgeBackendDeps& deps);
  ~RemoteBackend() override;

  std::string name() const override { return label_; }
  std::string model() const override { return config_.address(); }
  std::vector<Judgement> Score(const std::vector<v1::Sample>& samples) override;

 private:
  RemoteBackend(const v1::RemoteJudgeConfig& config, std::string label, UsageLedger* ledger);
  // One call for samples [begin, end).
  void ScoreBatch(const std::vector<v1::Sample>& samples, size_t begin, size_t end, std::vector<Judgement>* out);

  v1::RemoteJudgeConfig config_;
  std::string label_;
  UsageLedger* ledger_;
  std::unique_ptr<v1::Judge::Stub> stub_;
};

}  // namespace rlj
