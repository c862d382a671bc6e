// judge_client.h: the actor's side of Judge.Score: one call with a deadline, retried with the one backoff
// policy (common/retry_policy), never dropping a group the judge could still score. RESOURCE_EXHAUSTED (gRPC's
// answer when every handler thread of the judge is busy) is backpressure: retried for as long as it lasts. A
// judge waiting out a teacher outage answers UNAVAILABLE with a v1::ScoreDeferred detail: retried, and with
// judge.on_outage pause until the judge answers. UNAVAILABLE, DEADLINE_EXCEEDED and ABORTED otherwise are
// retried for `retry_budget`. The status's code and typed details decide, never its text.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "common/retry_policy.h"
#include "rlj/v1/judge.grpc.pb.h"

namespace rlj {

struct JudgeClientOptions {
  std::chrono::milliseconds call_timeout{60000};  // deadline of one attempt (judge.timeout_ms)
  // How long a judge may stay unreachable (or keep failing with a retryable code other than backpressure)
  // before the call gives up; backpressure answers do not count.
  std::chrono::milliseconds retry_budget{60000};
  bool wait_out_outages = false;  // judge.on_outage pause: retry unreachable / paused answers until shutdown
  BackoffPolicy backoff{std::chrono::milliseconds(200), std::chrono::milliseconds(5000)};
};

struct JudgeClientStats {
  std::atomic<int64_t> calls{0};         // Score calls made by the actor
  std::atomic<int64_t> attempts{0};      // RPCs sent
  std::atomic<int64_t> retries{0};       // attempts after the first
  std::atomic<int64_t> backpressure{0};  // RESOURCE_EXHAUSTED answers: every judge thread busy
  std::atomic<int64_t> paused{0};        // answers deferred by a teacher outage (v1::ScoreDeferred)
  std::atomic<int64_t> unavailable{0};   // other retryable failures (judge unreachable, deadline, ...)
  std::atomic<int64_t> failed{0};        // calls that gave up (the caller drops the batch)
};

class JudgeClient {
 public:
  JudgeClient(std::shared_ptr<v1::Judge::StubInterface> stub, JudgeClientOptions options);

  // The judge's verdicts, one per sample (checked), or the last error once the call gives up: a
  // non-retryable code, the retry budget spent (never with wait_out_outages), or shutdown (CANCELLED).
  // Thread-safe.
  absl::StatusOr<v1::ScoreResponse> Score(const v1::ScoreRequest& request);

  // True while some call is retrying against a judge that answered "paused" (a teacher outage).
  bool judge_paused() const { return paused_calls_.load() > 0; }
  const JudgeClientStats& stats() const { return stats_; }

 private:
  std::shared_ptr<v1::Judge::StubInterface> stub_;
  JudgeClientOptions options_;
  JudgeClientStats stats_;
  std::atomic<int> paused_calls_{0};
};

}  // namespace rlj
