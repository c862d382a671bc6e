// judge_service.h: the Judge gRPC service: validates a ScoreRequest, asks the backend, checks and stamps
// each verdict, appends every verdict to the reward log, and keeps counters.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/reward_log.h"
#include "judge/judge_backend.h"
#include "rlj/v1/judge.grpc.pb.h"

namespace rlj {

// Requests with more samples than this are rejected (INVALID_ARGUMENT).
inline constexpr int kMaxSamplesPerScoreRequest = 4096;

struct JudgeCounters {
  int64_t requests = 0;                  // Score calls answered (rejected ones included)
  int64_t rejected_requests = 0;         // INVALID_ARGUMENT: no samples, or too many
  int64_t samples = 0;                   // verdicts returned
  int64_t errors = 0;                    // verdicts returned with an error
  std::map<std::string, int64_t> errors_by_kind;
  int64_t reward_log_failures = 0;       // Append calls that failed (their rows are lost)
};

class JudgeService final : public v1::Judge::Service {
 public:
  // `reward_log` may be null (nothing is logged).
  JudgeService(std::unique_ptr<JudgeBackend> backend, std::unique_ptr<RewardLogWriter> reward_log);
  ~JudgeService() override;

  grpc::Status Score(grpc::ServerContext* context, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override;

  // The same without gRPC: one verdict per sample in order, or INVALID_ARGUMENT for a bad request.
  absl::StatusOr<v1::ScoreResponse> ScoreSamples(const v1::ScoreRequest& request);

  JudgeCounters counters() const;
  const JudgeBackend& backend() const { return *backend_; }

 private:
  void Count(const v1::ScoreResponse& response);

  std::unique_ptr<JudgeBackend> backend_;
  std::unique_ptr<RewardLogWriter> reward_log_;
  mutable absl::Mutex mutex_;
  JudgeCounters counters_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace rlj
