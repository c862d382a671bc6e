// judge_service.h: the Judge gRPC service: validates a ScoreRequest, asks the backend, checks and stamps
// each verdict, appends every verdict to the reward log, keeps counters, books spend per step, enforces the
// budget (new samples fail with kind "budget" once it is spent), tracks teacher outages (judge.on_outage:
// mask the unreachable samples, or pause: answer UNAVAILABLE so actors keep their groups and retry) and
// answers Judge.Status.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/reward_log.h"
#include "common/telemetry/metrics_registry.h"
#include "common/wire_bounds.h"  // kMaxSamplesPerScoreRequest: larger requests are rejected
#include "judge/judge_backend.h"
#include "judge/usage_ledger.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/judge.grpc.pb.h"

namespace rlj {

class JudgeQuality;

// The payload of ScoreSamples' pause status: a serialized v1::ScoreDeferred, sent as the gRPC status's details.
inline constexpr char kScoreDeferredPayload[] = "type.googleapis.com/rlj.v1.ScoreDeferred";

struct JudgeCounters {
  int64_t requests = 0;           // Score calls answered (rejected ones included)
  int64_t rejected_requests = 0;  // INVALID_ARGUMENT: no samples, or too many
  int64_t samples = 0;            // verdicts returned
  int64_t errors = 0;             // verdicts returned with an error
  std::map<std::string, int64_t> errors_by_kind;
  int64_t reward_log_failures = 0;  // Append calls that failed (their rows are lost)
  int64_t paused_requests = 0;      // on_outage pause: Score calls answered UNAVAILABLE (nothing logged)
  int64_t outages = 0;              // outages begun: a backend unreachable after its retries
  double outage_since_unix_s = 0;   // when the current outage began; 0 = the backend is reachable
  std::string outage_error;         // the current outage's last availability error
  double outage_seconds_total = 0;  // length of the outages that have ended
};

// What a Score call does with samples the backend could not reach after its retries (and failover):
// judge.on_outage.
enum class OutagePolicy {
  kMask,   // answer them with their error: the actor masks them, the run goes on with what is judged
  kPause,  // answer the whole call UNAVAILABLE (nothing logged): the actor keeps the group and retries it
};
OutagePolicy OutagePolicyFromConfig(v1::JudgeConfig::OutagePolicy policy);

class JudgeService final : public v1::Judge::Service {
 public:
  // `reward_log` may be null (nothing is logged). `ledger`: the one the backend books its calls into (its
  // budget applies); null = a ledger without a budget.
  JudgeService(std::unique_ptr<JudgeBackend> backend, std::unique_ptr<RewardLogWriter> reward_log,
               std::shared_ptr<UsageLedger> ledger = nullptr);
  ~JudgeService() override;

  grpc::Status Score(grpc::ServerContext* context, const v1::ScoreRequest* request,
                     v1::ScoreResponse* response) override;

  grpc::Status Status(grpc::ServerContext* context, const v1::JudgeStatusRequest* request,
                      v1::JudgeStatus* response) override;

  // The same without gRPC: one verdict per sample in order, or INVALID_ARGUMENT for a bad request.
  absl::StatusOr<v1::ScoreResponse> ScoreSamples(const v1::ScoreRequest& request);

  // Counters, spend per backend and per step, budget state, live backend state.
  v1::JudgeStatus StatusNow() const;

  JudgeCounters counters() const;
  UsageLedger& ledger() const { return *ledger_; }
  const JudgeBackend& backend() const { return *backend_; }

  // Quality signals (canaries, second scorings, reward/length correlation, metrics, TensorBoard); set before
  // serving. Null = none.
  void SetQuality(std::shared_ptr<JudgeQuality> quality) { quality_ = std::move(quality); }
  // judge.on_outage; set before serving (default kMask here; the config's default is pause).
  void SetOutagePolicy(OutagePolicy policy) { outage_policy_ = policy; }
  OutagePolicy outage_policy() const { return outage_policy_; }
  // Exports the outage state to `registry` (rlj_judge_outage, rlj_judge_outage_seconds, rlj_judge_outages_total,
  // rlj_judge_paused_requests_total) until the service is destroyed; `registry` must outlive the service.
  void ExportOutageMetrics(telemetry::MetricsRegistry* registry);

 private:
  void Count(const v1::ScoreResponse& response);
  // Hands the backends' machinery to the quality signals (TensorBoard), at most once a second.
  void ObserveBackendsNow();
  // Notes whether the backend was reachable for this call and logs when an outage begins and ends.
  // `unreachable`: the first availability error's message (empty if none) begins an outage; `reached` (a
  // verdict came from the teacher) ends one. Returns the outage's start (unix s; 0 = none).
  // `started_unix`: when the call began. Only a call that began after the outage did can end it: an answer
  // the teacher gave before it went away proves nothing about now.
  double TrackOutage(const std::string& unreachable, bool reached, double started_unix);

  std::unique_ptr<JudgeBackend> backend_;
  std::unique_ptr<RewardLogWriter> reward_log_;
  std::shared_ptr<UsageLedger> ledger_;
  std::shared_ptr<JudgeQuality> quality_;
  OutagePolicy outage_policy_ = OutagePolicy::kMask;
  mutable absl::Mutex mutex_;
  JudgeCounters counters_ ABSL_GUARDED_BY(mutex_);
  std::chrono::steady_clock::time_point next_backend_observation_ ABSL_GUARDED_BY(mutex_){};
  telemetry::MetricsRegistry::CollectorHandle outage_metrics_;
};

}  // namespace rlj
