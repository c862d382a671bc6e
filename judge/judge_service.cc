// judge_service.cc: Judge.Score: request checks, the backend call, verdict checks and the reward log.
#include "judge/judge_service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status.h"
#include "judge/quality/judge_quality.h"

namespace rlj {
namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The samples a Score call sends to the backend, and where their verdicts go in the response.
struct ToScore {
  std::vector<v1::Sample> samples;
  std::vector<int> positions;
};

// Samples without an id, or repeating an earlier sample's id (verdicts are matched by id), are answered
// here; the rest go to the backend in one call.
ToScore SamplesToScore(const v1::ScoreRequest& request, v1::ScoreResponse* response) {
  ToScore to_score;
  std::unordered_map<std::string, int> first_with_id;
  for (int i = 0; i < request.samples_size(); ++i) {
    if (request.samples(i).id().empty()) {
      SetVerdictError(response->mutable_verdicts(i), absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                      absl::StrCat("sample ", i, " has no id"));
    } else if (const auto [first, added] = first_with_id.emplace(request.samples(i).id(), i); !added) {
      SetVerdictError(
          response->mutable_verdicts(i), absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
          absl::StrCat("sample ", i, ": id '", request.samples(i).id(), "' repeats sample ", first->second, "'s"));
    } else {
      to_score.samples.push_back(request.samples(i));
      to_score.positions.push_back(i);
    }
  }
  return to_score;
}

// Once the budget is spent, the samples to score fail with kind "budget" instead (and none is left to score).
void FailOverBudget(const UsageLedger& ledger, ToScore* to_score, v1::ScoreResponse* response) {
  if (to_score->samples.empty() || !ledger.BudgetExhausted()) return;
  const std::string message =
      absl::StrFormat("the judge's budget is spent ($%.4f of judge.budget_usd $%.4f); no more samples are scored",
                      ledger.spent_usd(), ledger.budget_usd());
  RLJ_EVERY(10, log::Warn("{}", message));
  for (int position : to_score->positions) {
    SetVerdictError(response->mutable_verdicts(position), absl::StatusCode::kResourceExhausted, error_kind::kBudget,
                    message);
  }
  to_score->samples.clear();
}

// What the backend call left besides the verdicts.
struct BackendCall {
  std::vector<RewardLogRow> extra_rows;  // canaries and second scorings (judge/quality), never returned
  bool asked_backend = false;            // the backend answered (without throwing) for some samples
};

// Asks `backend` about the samples to score (with the quality signals' extra samples) and puts its verdicts,
// or its failure, in `response` and its raw answers in `raw_responses`.
BackendCall AskBackend(JudgeBackend& backend, JudgeQuality* quality, std::chrono::steady_clock::time_point start,
                       ToScore to_score, v1::ScoreResponse* response, std::vector<std::string>* raw_responses) {
  BackendCall call;
  if (to_score.samples.empty()) return call;
  std::vector<Judgement> judgements;
  std::string backend_failure;
  const size_t requested = to_score.samples.size();
  if (quality != nullptr) quality->AddExtraSamples(&to_score.samples);
  try {
    judgements = backend.Score(to_score.samples);
    if (judgements.size() != to_score.samples.size()) {
      backend_failure = absl::StrCat("the ", backend.name(), " backend returned ", judgements.size(), " verdicts for ",
                                     to_score.samples.size(), " samples");
    }
  } catch (const std::exception& e) {  // a backend must not throw; if one does, its samples fail, not the server
    backend_failure = absl::StrCat("the ", backend.name(), " backend failed: ", e.what());
  }
  if (quality != nullptr) {
    call.extra_rows =
        quality->TakeExtraVerdicts(requested, backend_failure, start, backend, &to_score.samples, &judgements);
  }
  call.asked_backend = backend_failure.empty();
  if (!backend_failure.empty()) {
    RLJ_EVERY(10, log::Error("{}", backend_failure));
    for (int position : to_score.positions) {
      SetVerdictError(response->mutable_verdicts(position), absl::StatusCode::kInternal, error_kind::kBackend,
                      backend_failure);
    }
    return call;
  }
  for (size_t k = 0; k < judgements.size(); ++k) {
    v1::Verdict* verdict = response->mutable_verdicts(to_score.positions[k]);
    *verdict = std::move(judgements[k].verdict);
    verdict->set_sample_id(to_score.samples[k].id());
    (*raw_responses)[to_score.positions[k]] = std::move(judgements[k].raw_response);
  }
  return call;
}

// Every verdict is normalized and names the backend, its model and a latency (the call's, if it has none).
void StampVerdicts(const std::string& backend_name, const std::string& backend_model, double call_ms,
                   v1::ScoreResponse* response) {
  for (v1::Verdict& verdict : *response->mutable_verdicts()) {
    NormalizeVerdict(&verdict);
    if (verdict.backend().empty()) verdict.set_backend(backend_name);
    if (verdict.model().empty()) verdict.set_model(backend_model);
    if (verdict.latency_ms() <= 0) verdict.set_latency_ms(call_ms);
  }
}

// Whether the call reached the teacher: the first availability error ("kind: message"; empty if none), and
// whether some verdict came from the teacher now (not from the cache).
struct Reachability {
  std::string unreachable;
  bool reached = false;
};

Reachability CheckReachability(const v1::ScoreResponse& response, bool asked_backend) {
  Reachability result;
  for (const v1::Verdict& verdict : response.verdicts()) {
    if (verdict.has_error() && error_kind::IsAvailabilityError(verdict.error())) {
      if (result.unreachable.empty()) {
        result.unreachable = absl::StrCat(verdict.error().kind(), ": ", verdict.error().message());
      }
    } else if (asked_backend && !verdict.cache_hit() &&
               (!verdict.has_error() || verdict.error().kind() != error_kind::kInvalid)) {
      result.reached = true;
    }
  }
  return result;
}

// The UNAVAILABLE a Score call answers in pause mode during an outage, with its typed v1::ScoreDeferred.
absl::Status PausedStatus(const std::string& backend_name, double outage_since, const std::string& unreachable) {
  const double now_unix = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  v1::ScoreDeferred deferred;
  deferred.set_backend(backend_name);
  deferred.set_outage_seconds(now_unix - outage_since);
  deferred.set_last_error(unreachable);
  absl::Status paused = absl::UnavailableError(absl::StrFormat(
      "Judge.Score paused (judge.on_outage: pause): the %s backend's teacher is unreachable since %s (%.0f s); "
      "keep the samples and retry. Last error: %s",
      backend_name,
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(static_cast<int64_t>(outage_since)),
                       absl::UTCTimeZone()),
      now_unix - outage_since, unreachable));
  paused.SetPayload(kScoreDeferredPayload, absl::Cord(deferred.SerializeAsString()));
  return paused;
}

// One reward log row per verdict of the request, then the extra rows.
absl::Status AppendRewardLog(RewardLogWriter& reward_log, const v1::ScoreRequest& request,
                             const v1::ScoreResponse& response, const std::vector<std::string>& raw_responses,
                             const std::vector<RewardLogRow>& extra_rows) {
  std::vector<RewardLogRow> rows;
  rows.reserve(request.samples_size());
  for (int i = 0; i < request.samples_size(); ++i) {
    rows.push_back(MakeRewardLogRow(request.samples(i), response.verdicts(i), raw_responses[i]));
  }
  rows.insert(rows.end(), extra_rows.begin(), extra_rows.end());
  return reward_log.Append(rows);
}

}  // namespace

JudgeService::JudgeService(std::unique_ptr<JudgeBackend> backend, std::unique_ptr<RewardLogWriter> reward_log,
                           std::shared_ptr<UsageLedger> ledger)
    : backend_(std::move(backend)),
      reward_log_(std::move(reward_log)),
      ledger_(ledger != nullptr ? std::move(ledger) : std::make_shared<UsageLedger>()) {}

JudgeService::~JudgeService() = default;

grpc::Status JudgeService::Score(grpc::ServerContext* /*context*/, const v1::ScoreRequest* request,
                                 v1::ScoreResponse* response) {
  absl::StatusOr<v1::ScoreResponse> result = ScoreSamples(*request);
  if (!result.ok()) {
    const grpc::Status status = ToGrpcStatus(result.status());
    // A pause travels as a typed detail (v1::ScoreDeferred), so callers decide on it without reading text.
    if (const auto deferred = result.status().GetPayload(kScoreDeferredPayload); deferred.has_value()) {
      return grpc::Status(status.error_code(), status.error_message(), std::string(*deferred));
    }
    return status;
  }
  *response = std::move(result).value();
  return grpc::Status::OK;
}

grpc::Status JudgeService::Status(grpc::ServerContext* /*context*/, const v1::JudgeStatusRequest* /*request*/,
                                  v1::JudgeStatus* response) {
  *response = StatusNow();
  return grpc::Status::OK;
}

v1::JudgeStatus JudgeService::StatusNow() const {
  v1::JudgeStatus status;
  {
    absl::MutexLock lock(&mutex_);
    status.set_requests(counters_.requests);
    status.set_rejected_requests(counters_.rejected_requests);
    status.set_samples(counters_.samples);
    status.set_errors(counters_.errors);
    for (const auto& [kind, count] : counters_.errors_by_kind) (*status.mutable_errors_by_kind())[kind] = count;
    status.set_reward_log_failures(counters_.reward_log_failures);
    status.set_paused_requests(counters_.paused_requests);
    if (counters_.outage_since_unix_s != 0) {
      status.set_outage_seconds(
          std::max(0.0, absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()) - counters_.outage_since_unix_s));
      status.set_outage_error(counters_.outage_error);
    }
  }
  status.set_backend(backend_->name());
  ledger_->Fill(&status);
  backend_->CollectStatus(&status);
  return status;
}

void JudgeService::ObserveBackendsNow() {
  const auto now = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&mutex_);
    if (now < next_backend_observation_) return;  // at most once a second: CollectStatus takes every backend's lock
    next_backend_observation_ = now + std::chrono::seconds(1);
  }
  v1::JudgeStatus status;
  backend_->CollectStatus(&status);
  quality_->ObserveBackends({status.backends().begin(), status.backends().end()});
}

absl::StatusOr<v1::ScoreResponse> JudgeService::ScoreSamples(const v1::ScoreRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  const double started_unix = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  const int n = request.samples_size();
  if (n == 0 || n > kMaxSamplesPerScoreRequest) {
    {
      absl::MutexLock lock(&mutex_);
      ++counters_.requests;
      ++counters_.rejected_requests;
    }
    if (n == 0) return absl::InvalidArgumentError("Judge.Score: the request has no samples");
    return absl::InvalidArgumentError(absl::StrCat("Judge.Score: the request has ", n, " samples; at most ",
                                                   kMaxSamplesPerScoreRequest, " per request"));
  }

  v1::ScoreResponse response;
  std::vector<std::string> raw_responses(n);
  for (int i = 0; i < n; ++i) response.add_verdicts()->set_sample_id(request.samples(i).id());
  ToScore to_score = SamplesToScore(request, &response);
  FailOverBudget(*ledger_, &to_score, &response);
  const BackendCall call = AskBackend(*backend_, quality_.get(), start, std::move(to_score), &response, &raw_responses);
  const double call_ms = MillisecondsSince(start);
  const std::string backend_name = backend_->name();
  StampVerdicts(backend_name, backend_->model(), call_ms, &response);

  // A backend unreachable after its retries: an outage. In pause mode the call fails as a whole (nothing is
  // logged or booked) and the actor sends it again; in mask mode those samples carry their error.
  const Reachability reachability = CheckReachability(response, call.asked_backend);
  const double outage_since = TrackOutage(reachability.unreachable, reachability.reached, started_unix);
  if (!reachability.unreachable.empty() && outage_policy_ == OutagePolicy::kPause) {
    {
      absl::MutexLock lock(&mutex_);
      ++counters_.requests;
      ++counters_.paused_requests;
    }
    return PausedStatus(backend_name, outage_since, reachability.unreachable);
  }

  for (int i = 0; i < n; ++i) ledger_->RecordVerdict(request.samples(i).policy_version(), response.verdicts(i));
  if (reward_log_ != nullptr) {
    if (absl::Status logged = AppendRewardLog(*reward_log_, request, response, raw_responses, call.extra_rows);
        !logged.ok()) {
      int64_t failures;
      {
        absl::MutexLock lock(&mutex_);
        failures = ++counters_.reward_log_failures;
      }
      RLJ_EVERY(5, log::Error("REWARD LOG WRITE FAILED ({} failed writes so far; their verdicts are not logged): {}",
                              failures, std::string(logged.message())));
    }
  }
  Count(response);
  if (quality_ != nullptr) {
    ObserveBackendsNow();
    quality_->Observe(request, response, call.extra_rows);
  }
  return response;
}

double JudgeService::TrackOutage(const std::string& unreachable, bool reached, double started_unix) {
  const double now_unix = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  double since = 0;
  double ended_after = -1;
  bool began = false;
  int64_t outages = 0;
  {
    absl::MutexLock lock(&mutex_);
    if (!unreachable.empty()) {
      counters_.outage_error = unreachable;
      if (counters_.outage_since_unix_s == 0) {
        counters_.outage_since_unix_s = now_unix;
        ++counters_.outages;
        began = true;
      }
    } else if (reached && counters_.outage_since_unix_s != 0 && started_unix > counters_.outage_since_unix_s) {
      ended_after = now_unix - counters_.outage_since_unix_s;
      counters_.outage_seconds_total += ended_after;
      counters_.outage_since_unix_s = 0;
    }
    since = counters_.outage_since_unix_s;
    outages = counters_.outages;
  }
  const char* policy = outage_policy_ == OutagePolicy::kPause ? "pause: Score calls answer UNAVAILABLE, actors retry"
                                                              : "mask: its samples are masked";
  if (began) {
    log::Warn("TEACHER OUTAGE {} began: the {} backend is unreachable after its retries (judge.on_outage {}): {}",
              outages, backend_->name(), policy, unreachable);
  } else if (since != 0) {
    RLJ_EVERY(30, log::Warn("teacher outage goes on ({:.0f} s; judge.on_outage {}): {}", now_unix - since, policy,
                            unreachable));
  }
  if (ended_after >= 0) {
    log::Info("teacher outage over: the {} backend answers again after {:.1f} s", backend_->name(), ended_after);
  }
  return since;
}

void JudgeService::ExportOutageMetrics(telemetry::MetricsRegistry* registry) {
  outage_metrics_ = registry->AddCollector([this](telemetry::MetricsSnapshotWriter& out) {
    const JudgeCounters c = counters();
    const double now_unix = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
    const bool in_outage = c.outage_since_unix_s != 0;
    out.Gauge("rlj_judge_outage", "1 while the backend is unreachable after its retries (a teacher outage)",
              in_outage ? 1 : 0);
    out.Gauge("rlj_judge_outage_seconds", "How long the current teacher outage has lasted (0 = none)",
              in_outage ? now_unix - c.outage_since_unix_s : 0);
    out.Counter("rlj_judge_outages_total", "Teacher outages begun", static_cast<double>(c.outages));
    out.Counter("rlj_judge_outage_seconds_total", "Length of the teacher outages that have ended",
                c.outage_seconds_total);
    out.Counter("rlj_judge_paused_requests_total",
                "Judge.Score calls answered UNAVAILABLE during an outage (judge.on_outage: pause)",
                static_cast<double>(c.paused_requests));
  });
}

OutagePolicy OutagePolicyFromConfig(v1::JudgeConfig::OutagePolicy policy) {
  return policy == v1::JudgeConfig::pause ? OutagePolicy::kPause : OutagePolicy::kMask;
}

void JudgeService::Count(const v1::ScoreResponse& response) {
  absl::MutexLock lock(&mutex_);
  ++counters_.requests;
  counters_.samples += response.verdicts_size();
  for (const v1::Verdict& verdict : response.verdicts()) {
    if (!verdict.has_error()) continue;
    ++counters_.errors;
    ++counters_.errors_by_kind[verdict.error().kind()];
  }
}

JudgeCounters JudgeService::counters() const {
  absl::MutexLock lock(&mutex_);
  return counters_;
}

}  // namespace rlj
