// http_dispatcher.h: the HTTP machinery every teacher backend shares: one event-loop thread on a libcurl
// multi handle (connections kept alive and reused) that sends queued requests under the backend's limits:
// a cap on requests in flight adapted by AIMD, RPM/TPM token buckets, retries with jittered exponential
// backoff honouring Retry-After, a deadline per request, a circuit breaker, and a budget check. Limits are
// per dispatcher, i.e. per backend, whatever the number of Score calls feeding it.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/retry_policy.h"
#include "judge/http/http_client.h"
#include "judge/http/rate_limiter.h"
#include "judge/http/retry_after.h"

namespace rlj {

struct AttemptClassification;  // judge/http/retry_decision.h

struct HttpDispatcherOptions {
  std::string name = "teacher";    // for logs
  int max_concurrency = 16;        // requests in flight, at most
  int min_concurrency = 1;         // the adaptive limit never goes below this
  bool adaptive = true;            // AIMD on 429s and latency growth
  double latency_factor = 3;       // latency above factor x baseline counts as growth
  double requests_per_minute = 0;  // 0 = unlimited
  double tokens_per_minute = 0;    // 0 = unlimited
  int max_retries = 3;             // of 429, 5xx and transport failures
  BackoffPolicy backoff;
  std::chrono::milliseconds request_timeout{60000};  // one attempt (capped by the request's deadline)
  std::chrono::milliseconds connect_timeout{10000};
  int breaker_failures = 5;  // consecutive failures that open the circuit; 0 = never
  std::chrono::milliseconds breaker_cooldown{5000};
  // A 2xx whose body is not JSON (cut short, an HTML error page from a proxy, garbage) is retried like a 5xx
  // and, once the retries are spent, fails with kind "parse" (masked, not an outage).
  bool require_json_body = false;
  std::function<bool()> budget_exhausted;          // when true, queued requests fail with kind "budget"
  std::function<std::string(std::string)> redact;  // applied to every error message (API keys)
};

// How one request ended: a 2xx response, or an error with an error_kind.
struct HttpOutcome {
  std::optional<HttpResponse> response;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string kind;
  std::string message;
  int attempts = 0;
  double latency_ms = 0;  // from Submit to the end, waits included
};

struct HttpDispatcherStats {
  int64_t submitted = 0;
  int64_t requests_sent = 0;  // attempts
  int64_t retries = 0;
  int64_t rate_limited = 0;  // 429 answers
  int64_t malformed = 0;     // 2xx answers whose body was not JSON (require_json_body)
  // Retries by cause: 429, 5xx, an attempt's timeout, another transport failure, a 2xx that was not JSON.
  int64_t retries_rate_limited = 0;
  int64_t retries_server_error = 0;
  int64_t retries_timeout = 0;
  int64_t retries_transport = 0;
  int64_t retries_malformed = 0;
  int64_t retry_after_waits = 0;   // retries that waited for the server's Retry-After
  double retry_after_seconds = 0;  // the seconds those waits asked for
  int64_t succeeded = 0;
  int64_t failed = 0;
  int concurrency_limit = 0;
  int in_flight = 0;
  int queued = 0;
  std::string circuit = "closed";
  int64_t circuit_opened = 0;
};

class HttpDispatcher {
 public:
  using Callback = std::function<void(HttpOutcome)>;
  using Clock = std::chrono::steady_clock;

  static absl::StatusOr<std::unique_ptr<HttpDispatcher>> Create(HttpDispatcherOptions options);
  // Fails whatever is still queued or in flight (Cancelled) and stops the loop.
  ~HttpDispatcher();
  HttpDispatcher(const HttpDispatcher&) = delete;
  HttpDispatcher& operator=(const HttpDispatcher&) = delete;

  // Queues `request`; `done` runs exactly once, on the dispatcher's thread (keep it short). The request's own
  // timeout is ignored: each attempt gets min(request_timeout, deadline - now). `estimated_tokens` is what the
  // TPM bucket is charged (correct it with CorrectTokens once the answer says). Thread-safe.
  void Submit(HttpRequest request, Clock::time_point deadline, double estimated_tokens, Callback done);

  // Submits every request and waits for all of them; outcomes in order.
  std::vector<HttpOutcome> SendAll(std::vector<HttpRequest> requests, Clock::time_point deadline,
                                   const std::vector<double>& estimated_tokens);

  // A request charged `estimated` tokens used `actual`.
  void CorrectTokens(double estimated, double actual);

  HttpDispatcherStats stats() const;

 private:
  struct Job;
  struct Loop;
  explicit HttpDispatcher(HttpDispatcherOptions options);
  std::unique_ptr<Job> MakeJob(HttpRequest request, Clock::time_point deadline, double estimated_tokens, Callback done);
  void Enqueue(std::vector<std::unique_ptr<Job>> jobs);  // hands jobs to the loop: one lock, one wake-up
  void Run();
  void Wake();  // interrupts the loop's wait
  // The loop's steps (on its thread; Run calls them in this order every turn).
  bool TakeArrivals();                          // moves submitted jobs to the ready queue; false: stopping
  void ReadyDueRetries(Clock::time_point now);  // retries whose backoff is over go ahead of new requests
  void SweepDeadlines(Clock::time_point now);   // fails ready jobs whose deadline passed (every kDeadlineSweep)
  void Dispatch(Clock::time_point now);         // starts ready jobs while the limits allow
  void StartAttempt(std::unique_ptr<Job> job, Clock::time_point now);
  void DrainCompletions();                 // every transfer curl reports done goes to Complete
  void Complete(Job* raw, CURLcode code);  // classify the attempt, then finish it, fail it or retry it
  void RecycleHandle(Job* job);            // the finished transfer's handle back to the idle pool
  // What an attempt tells the circuit breaker, the adaptive limit, the stats and the Retry-After pause.
  void RecordAttempt(const Job& job, const AttemptClassification& attempt, double latency_ms, Clock::time_point now);
  void PublishState(Clock::time_point now);
  Clock::time_point NextWake(Clock::time_point now) const;  // when the loop must look again at the latest
  void WaitForEvents(Clock::time_point wake);               // epoll until `wake`; hands socket activity to curl
  void CancelEverything();                                  // on shutdown: every job fails with Cancelled
  // Ends a job: publishes the state it leaves, then runs its callback.
  void Finish(std::unique_ptr<Job> job, HttpOutcome outcome);
  void Fail(std::unique_ptr<Job> job, absl::StatusCode code, std::string kind, std::string message);
  // The failure a request ends with after its last attempt, or when a later check stops it.
  void FailAfter(std::unique_ptr<Job> job, absl::StatusCode code, std::string kind, const std::string& why);
  // libcurl's socket and timer callbacks (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION); `user` is the Loop.
  static int OnCurlSocket(void* easy, int socket, int what, void* user, void* socket_data);
  // CURLOPT_OPENSOCKETFUNCTION / CURLOPT_CLOSESOCKETFUNCTION: the connections' sockets, so that idle ones
  // can stay registered with epoll between requests (see Loop::watched).
  static curl_socket_t OnCurlOpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address);
  static int OnCurlCloseSocket(void* user, curl_socket_t socket);
  static int OnCurlTimer(void* multi, long timeout_ms, void* user);

  HttpDispatcherOptions options_;
  RateLimiter limiter_;
  std::unique_ptr<Loop> loop_;  // touched only by the loop thread (after construction)
  mutable absl::Mutex mutex_;
  std::vector<std::unique_ptr<Job>> incoming_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  HttpDispatcherStats stats_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace rlj
