// judge_quality.h: the judge's quality signals, hooked into JudgeService::ScoreSamples:
//  - canaries (known answers) mixed into the backend call at quality.canary_rate, logged as `canary` rows
//    with pass/fail and never returned to the actor (so never trained on);
//  - self-consistency: a share of samples (quality.self_consistency_rate) scored a second time in the same
//    call with the cache bypassed, logged as `consistency` rows with the same sample_id;
//  - the Spearman correlation of reward and completion length over a window of recent verdicts, with a
//    warning above quality.length_correlation_threshold;
// and the judge's Prometheus metrics and TensorBoard scalars (per policy version) from every verdict, with
// the teacher backends' machinery beside them.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/reward_log.h"
#include "common/telemetry/process_telemetry.h"
#include "judge/judge_backend.h"
#include "judge/quality/canary_set.h"
#include "rlj/v1/config.pb.h"
#include "rlj/v1/judge.pb.h"

namespace rlj {

// Suffix of the sample id of a second scoring inside a backend call.
inline constexpr char kConsistencyIdSuffix[] = "#consistency";

class JudgeQuality {
 public:
  // Loads the canaries (quality.canary_path) when set. `telemetry` may be null (no metrics, no TensorBoard).
  static absl::StatusOr<std::unique_ptr<JudgeQuality>> Create(const v1::RunConfig& config,
                                                              std::shared_ptr<telemetry::ProcessTelemetry> telemetry);
  ~JudgeQuality();  // writes the TensorBoard scalars of versions not yet written

  // Before the backend call: appends canaries and second scorings to `to_score` (the request's samples).
  void AddExtraSamples(std::vector<v1::Sample>* to_score);

  // After the backend call: removes the samples AddExtraSamples added (positions >= `requested`) and their
  // judgements, and returns their reward log rows (normalized, stamped with the backend, marked canary /
  // consistency). When the call failed (`backend_failure` not empty) the extras are dropped without rows.
  std::vector<RewardLogRow> TakeExtraVerdicts(size_t requested, const std::string& backend_failure,
                                              std::chrono::steady_clock::time_point call_start,
                                              const JudgeBackend& backend, std::vector<v1::Sample>* to_score,
                                              std::vector<Judgement>* judgements);

  // After the response is final: counts the request's verdicts and the extras' rows into the metrics,
  // the per-version TensorBoard scalars, canary accuracy, self-consistency and the length correlation.
  void Observe(const v1::ScoreRequest& request, const v1::ScoreResponse& response,
               const std::vector<RewardLogRow>& extra_rows);

  // The teacher backends' HTTP machinery now (concurrency limit, in flight, breaker, retries by cause,
  // Retry-After waits): written with each policy version's scalars as teacher/<backend>/<name>.
  void ObserveBackends(std::vector<v1::JudgeBackendStatus> backends);

  struct Snapshot {
    int64_t canaries = 0, canaries_passed = 0;
    int64_t consistency_pairs = 0, consistency_agreeing = 0;
    int64_t length_samples = 0;
    double length_spearman = 0;  // NaN below the minimum samples
    bool length_warning = false;
  };
  Snapshot snapshot() const;

 private:
  struct VersionStats;
  JudgeQuality(const v1::RunConfig& config, std::vector<Canary> canaries,
               std::shared_ptr<telemetry::ProcessTelemetry> telemetry);
  void FlushVersionsBefore(int64_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  std::vector<v1::JudgeBackendStatus> backends_ ABSL_GUARDED_BY(mutex_);
  const v1::QualityConfig config_;
  const std::vector<Canary> canaries_;
  std::shared_ptr<telemetry::ProcessTelemetry> telemetry_;

  mutable absl::Mutex mutex_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mutex_);
  std::vector<size_t> canary_order_ ABSL_GUARDED_BY(mutex_);  // a shuffled pass over the canaries
  size_t canary_cursor_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t extra_counter_ ABSL_GUARDED_BY(mutex_) = 0;
  // Canary id of each canary sample id in flight (to find the expected reward after the call).
  std::map<std::string, size_t> canary_in_flight_ ABSL_GUARDED_BY(mutex_);
  std::deque<std::pair<double, double>> length_window_ ABSL_GUARDED_BY(mutex_);  // (reward, length)
  Snapshot totals_ ABSL_GUARDED_BY(mutex_);
  std::map<int64_t, std::unique_ptr<VersionStats>> versions_ ABSL_GUARDED_BY(mutex_);
  int64_t newest_version_ ABSL_GUARDED_BY(mutex_) = -1;
};

}  // namespace rlj
