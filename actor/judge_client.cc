// judge_client.cc: Judge.Score with the actor's retry policy (backpressure, outages, unreachable judges).
#include "actor/judge_client.h"

#include <algorithm>
#include <optional>
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

// The judge waits out a teacher outage: UNAVAILABLE with a v1::ScoreDeferred detail.
std::optional<v1::ScoreDeferred> Deferred(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE || status.error_details().empty()) return std::nullopt;
  v1::ScoreDeferred deferred;
  if (!deferred.ParseFromString(status.error_details())) return std::nullopt;
  return deferred;
}

}  // namespace

JudgeClient::JudgeClient(std::shared_ptr<v1::Judge::StubInterface> stub, JudgeClientOptions options)
    : stub_(std::move(stub)), options_(options) {}

absl::StatusOr<v1::ScoreResponse> JudgeClient::Score(const v1::ScoreRequest& request) {
  stats_.calls.fetch_add(1);
  std::mt19937_64 random(std::random_device{}());
  int failures = 0;                 // consecutive, for the backoff
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
    if (!IsTransient(failure.code())) return give_up(std::move(failure));
    const Clock::time_point now = Clock::now();
    const std::chrono::milliseconds wait = BackoffDelay(failures++, options_.backoff, random);
    if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      // Backpressure: the judge is alive and busy. Keep the group and come back later, however long it takes.
      stats_.backpressure.fetch_add(1);
      failing = false;
    } else {
      if (const std::optional<v1::ScoreDeferred> deferred = Deferred(status)) {
        stats_.paused.fetch_add(1);
        if (!counted_as_paused) paused_calls_.fetch_add(1);
        counted_as_paused = true;
        RLJ_EVERY(30, log::Warn("the judge waits out an outage of its {} backend ({:.0f} s); keeping {} samples and "
                                "retrying. Last error: {}",
                                deferred->backend(), deferred->outage_seconds(), request.samples_size(),
                                deferred->last_error()));
      } else {
        stats_.unavailable.fetch_add(1);
        RLJ_EVERY(10, log::Warn("Judge.Score failed, retrying: {}", std::string(failure.message())));
      }
      if (!failing) failing_since = now;
      failing = true;
      if (!options_.wait_out_outages && now - failing_since + wait > options_.retry_budget) {
        return give_up(std::move(failure));
      }
    }
    if (WaitForShutdown(wait)) return give_up(absl::CancelledError("Judge.Score: stopping"));
  }
}

}  // namespace rlj
