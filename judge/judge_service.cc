// judge_service.cc: Judge.Score: request checks, the backend call, verdict checks and the reward log.
#include "judge/judge_service.h"

#include <chrono>
#include <cmath>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "judge/quality/judge_quality.h"

namespace rlj {
namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
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
  if (!result.ok()) return ToGrpcStatus(result.status());
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
  }
  status.set_backend(backend_->name());
  ledger_->Fill(&status);
  backend_->CollectStatus(&status);
  return status;
}

absl::StatusOr<v1::ScoreResponse> JudgeService::ScoreSamples(const v1::ScoreRequest& request) {
  const auto start = std::chrono::steady_clock::now();
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

  // Samples without an id are answered here; the rest go to the backend in one call.
  std::vector<v1::Sample> to_score;
  std::vector<int> positions;
  for (int i = 0; i < n; ++i) {
    if (request.samples(i).id().empty()) {
      SetVerdictError(response.mutable_verdicts(i), absl::StatusCode::kInvalidArgument, error_kind::kInvalid,
                      absl::StrCat("sample ", i, " has no id"));
    } else {
      to_score.push_back(request.samples(i));
      positions.push_back(i);
    }
  }
  if (!to_score.empty() && ledger_->BudgetExhausted()) {
    const std::string message = absl::StrFormat(
        "the judge's budget is spent ($%.4f of judge.budget_usd $%.4f); no more samples are scored",
        ledger_->spent_usd(), ledger_->budget_usd());
    RLJ_EVERY(10, log::Warn("{}", message));
    for (int position : positions) {
      SetVerdictError(response.mutable_verdicts(position), absl::StatusCode::kResourceExhausted, error_kind::kBudget,
                      message);
    }
    to_score.clear();
  }
  std::vector<RewardLogRow> extra_rows;  // canaries and second scorings (judge/quality), never returned
  if (!to_score.empty()) {
    std::vector<Judgement> judgements;
    std::string backend_failure;
    const size_t requested = to_score.size();
    if (quality_ != nullptr) quality_->AddExtraSamples(&to_score);
    try {
      judgements = backend_->Score(to_score);
      if (judgements.size() != to_score.size()) {
        backend_failure = absl::StrCat("the ", backend_->name(), " backend returned ", judgements.size(),
                                       " verdicts for ", to_score.size(), " samples");
      }
    } catch (const std::exception& e) {  // a backend must not throw; if one does, its samples fail, not the server
      backend_failure = absl::StrCat("the ", backend_->name(), " backend failed: ", e.what());
    }
    if (quality_ != nullptr) {
      extra_rows = quality_->TakeExtraVerdicts(requested, backend_failure, start, *backend_, &to_score, &judgements);
    }
    if (!backend_failure.empty()) {
      RLJ_EVERY(10, log::Error("{}", backend_failure));
      for (int position : positions) {
        SetVerdictError(response.mutable_verdicts(position), absl::StatusCode::kInternal, error_kind::kBackend,
                        backend_failure);
      }
    } else {
      for (size_t k = 0; k < judgements.size(); ++k) {
        v1::Verdict* verdict = response.mutable_verdicts(positions[k]);
        *verdict = std::move(judgements[k].verdict);
        verdict->set_sample_id(to_score[k].id());
        raw_responses[positions[k]] = std::move(judgements[k].raw_response);
      }
    }
  }

  const double call_ms = MillisecondsSince(start);
  const std::string backend_name = backend_->name();
  const std::string backend_model = backend_->model();
  for (v1::Verdict& verdict : *response.mutable_verdicts()) {
    NormalizeVerdict(&verdict);
    if (verdict.backend().empty()) verdict.set_backend(backend_name);
    if (verdict.model().empty()) verdict.set_model(backend_model);
    if (verdict.latency_ms() <= 0) verdict.set_latency_ms(call_ms);
  }

  for (int i = 0; i < n; ++i) ledger_->RecordVerdict(request.samples(i).policy_version(), response.verdicts(i));

  if (reward_log_ != nullptr) {
    std::vector<RewardLogRow> rows;
    rows.reserve(n);
    for (int i = 0; i < n; ++i) rows.push_back(MakeRewardLogRow(request.samples(i), response.verdicts(i), raw_responses[i]));
    rows.insert(rows.end(), extra_rows.begin(), extra_rows.end());
    if (absl::Status logged = reward_log_->Append(rows); !logged.ok()) {
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
  if (quality_ != nullptr) quality_->Observe(request, response, extra_rows);
  return response;
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
