// judge_client.cc: Judge.Score with the actor's retry policy (backpressure, outages, unreachable judges).
#include "actor/judge_client.h"

#include <algorithm>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/log.h"
#include "common/shutdown.h"
#include "common/status.h"

namespace rlj {
namespace {

using Clock = std::chrono::steady_clock;

bool IsRetryable(grpc::StatusCode code) {
  // Transient conditions only; INTERNAL or INVALID_ARGUMENT would fail again.
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::ABORTED;
}

}  // namespace

JudgeClient::JudgeClient(std::shared_ptr<v1::Judge::StubInterface> stub, JudgeClientOptions options)
    : stub_(std::move(stub)), options_(options) {}

absl::StatusOr<v1::ScoreResponse> JudgeClient::Score(const v1::ScoreRequest& request) {
  stats_.calls.fetch_add(1);
  std::chrono::milliseconds backoff = options_.initial_backoff;
  std::mt19937 jitter(std::random_device{}());
  bool failing = false;             // in a run of failures other than backpressure
  Clock::time_point failing_since;  // its first
  bool counted_as_paused = false;
  const auto give_up = [&](absl::Status status) -> absl::Status {
    if (counted_as_paused) paused_calls_.fetch_sub(1);
    counted_as_paused = false;
    stats_.failed.fetch_add(1);
    return status;
  };
  for (int attempt = 1;; ++attempt) {
    stats_.attempts.fetch_add(1);
    if (attempt > 1) stats_.retries.fetch_add(1);
    grpc::ClientContext context;
    SetDeadline(&context, options_.call_timeout);
    v1::ScoreResponse response;
    const grpc::Status status = stub_->Score(&context, request, &response);
    if (status.ok()) {
      if (counted_as_paused) paused_calls_.fetch_sub(1);
      counted_as_paused = false;
      if (response.verdicts_size() != request.samples_size()) {
        return give_up(absl::DataLossError(absl::StrCat("Judge.Score returned ", response.verdicts_size(),
                                                        " verdicts for ", request.samples_size(), " samples")));
      }
      return response;
    }
    absl::Status failure = FromGrpcStatus(status, "Judge.Score");
    if (!IsRetryable(status.error_code())) return give_up(std::move(failure));
    const std::string& message = status.error_message();
    const Clock::time_point now = Clock::now();
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
        message.find(kServerThreadsExhaustedMessage) != std::string::npos) {
      // Backpressure: the judge is alive and busy. Keep the group and come back later, however long it takes.
      stats_.backpressure.fetch_add(1);
      failing = false;
    } else {
      const bool paused = status.error_code() == grpc::StatusCode::UNAVAILABLE &&
                          message.find(kJudgePausedMessage) != std::string::npos;
      if (paused) {
        stats_.paused.fetch_add(1);
        if (!counted_as_paused) paused_calls_.fetch_add(1);
        counted_as_paused = true;
        RLJ_EVERY(30, log::Warn("the judge waits out a teacher outage; keeping {} samples and retrying: {}",
                                request.samples_size(), message));
      } else {
        stats_.unavailable.fetch_add(1);
        RLJ_EVERY(10, log::Warn("Judge.Score failed, retrying: {}", std::string(failure.message())));
      }
      if (!failing) failing_since = now;
      failing = true;
      if (!options_.wait_out_outages && now - failing_since + backoff > options_.retry_budget) {
        return give_up(std::move(failure));
      }
    }
    const auto wait = std::chrono::milliseconds(
        std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(jitter));
    if (WaitForShutdown(wait)) return give_up(absl::CancelledError("Judge.Score: stopping"));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace rlj
